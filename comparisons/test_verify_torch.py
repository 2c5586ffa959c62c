"""``l2compare verify MODEL.keras --torch FILE.py:CLASS``: a hand-written torch port of the article's CNN and the
user's torch.optim optimizer, judged one step at a time against Keras's train step; a step that is not exact is
matched against the known mistakes by measurement. Each bad input: one line (or the unmatched tensors, one per
line), exit code 2, nothing written."""
import os
import re

import pytest

from comparisons.clicheck import assert_one_line_error, save_tiny_bn
from l2compare import cli

LAM = 0.01   # the article's λ (Keras's float32 rounding of it is applied on both sides)

PORT = '''
from torch import nn
from torch.nn import functional as F


class CNN(nn.Module):
    """The article's CNN by hand: NCHW input, logits out."""

    def __init__(self):
        super().__init__()
{init}

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.out({flatten})
'''
LAYERS = ["self.conv1 = nn.Conv2d(1, 32, 3)", "self.conv2 = nn.Conv2d(32, 64, 3)", "self.out = nn.Linear(1600, 10)"]
HWC = "x.permute(0, 2, 3, 1).flatten(1)"   # Keras's Flatten order


def _port(init=LAYERS, flatten=HWC) -> str:
    return PORT.format(init="\n".join(" " * 8 + line for line in init), flatten=flatten)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from keras_impl.models import build_model

    folder = tmp_path_factory.mktemp("verify_torch")
    build_model("cnn", LAM).save(folder / "cnn.keras")
    ports = {
        "good.py": _port(),
        "chw.py": _port(flatten="x.flatten(1)"),                       # torch's (C, H, W) flatten: the classic mistake
        "reordered.py": _port(init=[LAYERS[2], LAYERS[0], LAYERS[1]]),   # out registered first: --map pairs it
        "extra.py": _port(init=LAYERS + ["self.spare = nn.Linear(10, 10)"]),
        "broken.py": "import torch\nhelper = undefined_name\n",
        "plain.py": "class CNN:\n    pass\n",
        "args.py": _port().replace("def __init__(self):", "def __init__(self, width):"),
    }
    for name, text in ports.items():
        (folder / name).write_text(text)
    (folder / "map.json").write_text('{"out/kernel": "out.weight", "out/bias": "out.bias", '
                                     '"conv1/kernel": "conv1.weight", "conv1/bias": "conv1.bias", '
                                     '"conv2/kernel": "conv2.weight", "conv2/bias": "conv2.bias"}')
    return folder


def _verify(files, tmp_path, port, *args):
    report = tmp_path / "report.md"
    code = cli.main(["verify", str(files / "cnn.keras"), "--torch", f"{files / port}:CNN", "--steps", "2",
                     "--report", str(report), *args])
    return code, report


def _verdicts(out: str) -> dict[str, str]:
    return dict(re.findall(r"^(float64|float32)\s+your port\s+(\w+)", out, re.M))


@pytest.mark.parametrize("optimizer,args", [
    ("sgd", ["--torch-optimizer", "SGD(lr=0.01)", "--penalty"]),                     # L2 in the loss
    ("sgd", ["--torch-optimizer", f"SGD(lr=0.01, weight_decay={2 * LAM})", "--decay-on", "regularized"]),  # coupled 2λ
    ("momentum", ["--torch-optimizer", f"SGD(lr=0.01, momentum=0.9, weight_decay={2 * LAM})",
                  "--decay-on", "regularized"]),   # Keras's m moved in
], ids=["penalty", "coupled-2λ", "momentum-coupled-2λ"])
def test_a_correct_hand_port_is_exact_in_both_dtypes(files, tmp_path, capsys, optimizer, args):
    code, report = _verify(files, tmp_path, "good.py", "--optimizer", optimizer, *args)
    out = capsys.readouterr().out
    assert code == 0, out
    assert _verdicts(out) == {"float64": "exact", "float32": "exact"}, out
    assert "2 step(s)" in out and "channels first" in out and "logits" in out
    assert "your torch optimizer differs" not in out   # Keras's hyperparameters, given or torch's defaults
    assert "| conv1/kernel | conv1.weight | (32, 1, 3, 3) |" in report.read_text()


@pytest.mark.parametrize("optimizer,torch_optimizer,differs", [
    ("momentum", "SGD(lr=0.05, momentum=0.9)", "lr=0.05 (Keras: learning_rate=0.01)"),
    ("momentum", "SGD(lr=0.01, momentum=0.5)", "momentum=0.5 (Keras: momentum=0.9)"),
    ("sgd", "SGD(lr=0.01, momentum=0.5)", "momentum=0.5 (Keras: momentum=0)"),
    ("adam", "Adam(lr=1e-3, betas=(0.8, 0.999), eps=1e-7)", "betas=0.8, 0.999 (Keras: beta_1, beta_2=0.9, 0.999)"),
    ("adam", "Adam()", "eps=1e-08 (Keras: epsilon=1e-07)"),   # torch's default ε
])
def test_other_hyperparameters_than_kerass_are_named(files, tmp_path, capsys, optimizer, torch_optimizer, differs):
    """A port trained at another learning rate, momentum, β or ε than Keras's side reads wrong, and no known
    mistake matches; a note names the values, so that the user does not hunt for a port mistake. (Momentum against
    Keras's plain SGD is judged at step 1 only, where torch's momentum buffer is still empty: that verdict is
    exact, and the note and the step-1 note say why it means little.)"""
    code, _ = _verify(files, tmp_path, "good.py", "--optimizer", optimizer, "--torch-optimizer", torch_optimizer,
                      "--penalty")
    out = capsys.readouterr().out
    if optimizer != "sgd":
        assert code == 1 and "exact" not in _verdicts(out).values(), out
    else:
        assert "judged at step 1 only" in out, out
    assert f"note: your torch optimizer differs from Keras's {optimizer} in {differs}: not the same training\n" in out


def test_adamw_standing_in_for_l2_is_diagnosed_decoupled(files, tmp_path, capsys):
    code, report = _verify(files, tmp_path, "good.py", "--torch-optimizer", f"AdamW(lr=1e-3, weight_decay={LAM})")
    out = capsys.readouterr().out
    assert code == 1 and set(_verdicts(out).values()) == {"wrong"}, out
    # AdamW is also torch's Adam: ε inside the bias correction. Both mistakes are named, from the measurement.
    assert "diagnosis (step 1): your step is decoupled weight decay (AdamW-style) instead of L2 + torch's Adam ε " \
           "placement" in out, out
    text = report.read_text()
    assert "## Diagnosis (step 1)" in text and "| yes |" in text


def test_weight_decay_lambda_instead_of_2_lambda_is_diagnosed_factor_2(files, tmp_path, capsys):
    code, _ = _verify(files, tmp_path, "good.py", "--optimizer", "momentum",
                      "--torch-optimizer", f"SGD(lr=0.01, momentum=0.9, weight_decay={LAM})")
    out = capsys.readouterr().out
    assert code == 1 and "exact" not in _verdicts(out).values(), out
    assert "diagnosis (step 1): your step is factor 2 (L2 gradient λ·w; Keras's is 2λ·w)" in out, out


def test_weight_decay_on_every_parameter_is_diagnosed(files, tmp_path, capsys):
    """SGD(model.parameters(), weight_decay=2λ) (--decay-on all, the default) also decays the biases and the output
    layer's kernel, which the article's CNN does not regularize: the diagnosis names the mistake and the tensors."""
    code, _ = _verify(files, tmp_path, "good.py", "--optimizer", "sgd",
                      "--torch-optimizer", f"SGD(lr=0.01, weight_decay={2 * LAM})")
    out = capsys.readouterr().out
    assert code == 1 and "exact" not in _verdicts(out).values(), out
    assert "diagnosis (step 1): your step is weight decay on tensors Keras does not regularize (conv1.bias, " \
           "conv2.bias, out.bias, out.weight; --decay-on regularized" in out, out


def test_torch_adam_with_the_penalty_is_diagnosed_epsilon_placement(files, tmp_path, capsys):
    code, _ = _verify(files, tmp_path, "good.py", "--torch-optimizer", "Adam(lr=1e-3, eps=1e-7)", "--penalty")
    out = capsys.readouterr().out
    assert code == 1, out
    assert "diagnosis (step 1): your step is torch's Adam ε placement\n" in out, out


BN_PORT = '''
from torch import nn
from torch.nn import functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, bias=False)
        self.bn = nn.BatchNorm2d(3, eps=1e-3{momentum})
        self.out = nn.Linear(48, 4)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.out(x.permute(0, 2, 3, 1).flatten(1))
'''


@pytest.mark.parametrize("momentum,diagnosis", [
    (", momentum=0.01", "your step is BatchNorm's running variance unbiased (nn.BatchNorm's)\n"),
    ("", "your step is BatchNorm momentum 0.1 (torch's convention) + BatchNorm's running variance unbiased"),
], ids=["keras-momentum", "torch-default-momentum"])
def test_nn_batchnorm_is_diagnosed(tmp_path, capsys, momentum, diagnosis):
    """nn.BatchNorm2d moves running_var with the unbiased variance; its default momentum 0.1 is Keras's 0.9."""
    save_tiny_bn(tmp_path / "bn.keras")
    (tmp_path / "port.py").write_text(BN_PORT.format(momentum=momentum))
    code = cli.main(["verify", str(tmp_path / "bn.keras"), "--torch", f"{tmp_path / 'port.py'}:Net", "--optimizer",
                     "momentum", "--torch-optimizer", "SGD(lr=0.01, momentum=0.9)", "--penalty", "--steps", "2",
                     "--report", str(tmp_path / "report.md")])
    out = capsys.readouterr().out
    assert code == 1 and f"diagnosis (step 1): {diagnosis}" in out, out


def test_flatten_order_is_diagnosed_from_the_forward_pass(files, tmp_path, capsys):
    code, report = _verify(files, tmp_path, "chw.py", "--torch-optimizer", "SGD(lr=0.01)", "--penalty")
    out = capsys.readouterr().out
    assert code == 1, out
    assert "forward pass: flatten order" in out and "training not compared" in out, out
    assert "Keras's Flatten reads (H, W, C)" in report.read_text()


def test_map_pairs_tensors_that_order_cannot(files, tmp_path, capsys):
    code, _ = _verify(files, tmp_path, "reordered.py", "--optimizer", "sgd", "--penalty")
    err = capsys.readouterr().err
    assert code == 2 and "tensor(s) unmatched" in err
    code, _ = _verify(files, tmp_path, "reordered.py", "--optimizer", "sgd", "--penalty", "--map",
                      str(files / "map.json"))
    out = capsys.readouterr().out
    assert code == 0 and _verdicts(out) == {"float64": "exact", "float32": "exact"}, out


def test_unmatched_tensors_are_listed_one_per_line_exit_2(files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["verify", str(files / "cnn.keras"), "--torch", f"{files / 'extra.py'}:CNN", "--penalty"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "Traceback" not in captured.err
    assert "your spare.weight (10, 10): no Keras weight" in captured.err
    assert "your spare.bias (10,): no Keras weight" in captured.err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("port,args,message", [
    ("good.py", ["--torch-optimizer", "__import__('os')"], "--torch-optimizer \"__import__('os')\": positional"),
    ("good.py", ["--torch-optimizer", "Adam(lr=foo)"], "lr=foo is not a literal"),
    ("good.py", ["--torch-optimizer", "NotAnOptimizer()"], "NotAnOptimizer(...): not a torch.optim optimizer class"),
    ("good.py", ["--torch-optimizer", "Adam(lr=1e-3, momentum=0.9)"], "unexpected keyword argument 'momentum'"),
    ("good.py", [], "--torch needs --torch-optimizer"),
    ("missing.py", ["--penalty"], "missing.py: no such file"),
    ("broken.py", ["--penalty"], "importing it failed: NameError: name 'undefined_name' is not defined"),
    ("plain.py", ["--penalty"], "plain.py:CNN is not a torch.nn.Module subclass"),
    ("args.py", ["--penalty"], "needs constructor arguments (width)"),
], ids=["import", "not-literal", "not-optimizer", "bad-keyword", "no-optimizer", "no-file", "import-fails",
        "not-module", "constructor-args"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(files, tmp_path, capsys, monkeypatch, port, args, message):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", str(files / "cnn.keras"), "--torch", f"{files / port}:CNN", *args]) == 2
    assert_one_line_error(capsys, message)
    assert os.listdir(tmp_path) == []


def test_torch_options_need_torch(files, capsys):
    assert cli.main(["verify", str(files / "cnn.keras"), "--penalty"]) == 2
    assert_one_line_error(capsys, "--penalty describes your own torch port: use it with --torch FILE.py:CLASS")


def test_a_map_naming_no_keras_weight_is_one_line_exit_2(files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text('{"conv9/kernel": "conv1.weight"}')
    assert cli.main(["verify", str(files / "cnn.keras"), "--torch", f"{files / 'good.py'}:CNN", "--penalty",
                     "--map", str(tmp_path / "bad.json")]) == 2
    assert_one_line_error(capsys, "--map: 'conv9/kernel' is not a weight of the Keras model (e.g. 'conv1/kernel')")
    assert os.listdir(tmp_path) == ["bad.json"]


def test_a_long_list_of_unmatched_tensors_is_cut_after_ten_lines():
    from l2compare.porter.verify.user_port import Match

    match = Match({}, {}, [(f"dense_{i}/kernel", (4, 4)) for i in range(8)],
                  [(f"fc{i}.weight", (4, 4)) for i in range(5)])
    lines = match.problems()
    assert len(lines) == 11 and lines[-1] == "… and 3 more"
    assert lines[0] == "Keras dense_0/kernel (4, 4): no tensor of your port"
    assert lines[8] == "your fc0.weight (4, 4): no Keras weight"
