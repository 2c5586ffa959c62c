"""The pieces the float32 verdict stands on: recorded optimizer states are complete, torch resumes
from them exactly, and decision margins find ties."""
import numpy as np
import pytest
import torch

from l2compare.parity import onestep
from l2compare.parity.cases import ParityCase, keras_side, parity_data, preset_optimizer
from l2compare.parity.sides import keras_trajectory, torch_setup


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_keras_resumes_bit_for_bit_from_its_recorded_state(optimizer):
    """A float32 Keras step from the recorded weights and optimizer state (moments, momentum, iteration
    count) lands exactly where fit's own step did: the recorded state is all the state there is."""
    import keras_impl
    from keras_impl import optim, recipes, train
    from keras_impl.weights import export_weights, import_weights

    case = keras_side(ParityCase(model="mlp", optimizer=preset_optimizer(optimizer, "float32")))
    traj = keras_trajectory(case)
    x, y = parity_data(case.n_samples, case.dataset)
    batches = onestep.step_batches(traj.order, case.batch_size, len(traj.steps))
    model = keras_impl.build_model(case.model, l2=recipes.model_l2(case.keras_config, case.l2))
    opt = optim.make_optimizer(model, case.optimizer, case.keras_config)
    xs = train.as_inputs(x, case.model, "float32")
    for t in (1, 7, 30):
        import_weights(model, traj.steps[t - 1])
        optim.import_state(opt, model, traj.states[t - 1])
        train.train_step(model, opt, xs[batches[t]], y[batches[t]])
        after = export_weights(model)
        for name, value in traj.steps[t].items():
            np.testing.assert_array_equal(after[name], value, err_msg=f"{name} after step {t + 1}")
        assert optim.export_state(opt, model)["iterations"] == traj.states[t]["iterations"] == t + 1


@pytest.mark.parametrize("torch_optimizer,optimizer", [("keras", "adam"), ("keras", "momentum"),
                                                       ("torch", "adam"), ("torch", "momentum")])
def test_torch_optimizer_state_round_trips_through_keras_layout(torch_optimizer, optimizer):
    case = ParityCase(model="cnn", optimizer=preset_optimizer(optimizer, "float32"), torch_optimizer=torch_optimizer,
                      torch_epsilon=1e-7)
    traj = keras_trajectory(keras_side(case))
    from torch_impl import optim

    model, opt = torch_setup(case, traj.steps[4], "float32")
    optim.import_state(opt, model, traj.states[4])
    back = optim.export_state(opt, model)
    for name, slots in traj.states[4]["slots"].items():
        for slot, value in slots.items():
            # stock SGD keeps −m/lr: back and forth is exact only up to one float32 rounding each way
            np.testing.assert_allclose(back["slots"][name][slot], value, rtol=3e-7, atol=0,
                                       err_msg=f"{name} {slot}")
    if optimizer == "adam":
        assert back["iterations"] == traj.states[4]["iterations"]


def test_import_state_leaves_the_callers_arrays_alone():
    """The optimizer updates its state in place; the recorded Keras states must not change with it
    (1-D slots need no transpose, so without a copy they would be shared)."""
    case = ParityCase(model="mlp", optimizer=preset_optimizer("momentum", "float32"))
    traj = keras_trajectory(keras_side(case))
    before = {n: {s: v.copy() for s, v in slots.items()} for n, slots in traj.states[3]["slots"].items()}
    x, y = parity_data(case.n_samples, case.dataset)
    onestep.torch_steps(case, traj, x, y, "float32")
    for name, slots in before.items():
        for slot, value in slots.items():
            np.testing.assert_array_equal(traj.states[3]["slots"][name][slot], value, err_msg=f"{name} {slot}")


def test_decision_margin_finds_a_relu_input_at_rounding_distance_from_zero():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)).double()
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1.0, -1.0 + 1e-9], [0.5, 0.5, 0.5]], dtype=torch.float64))
        model[0].bias.zero_()
    # unit 0: z = 3e-9 against Σ|terms| = 6: margin 5e-10, a tie; unit 1 is far from zero
    assert onestep.decision_margin(model, x) == pytest.approx(5e-10, rel=1e-6)
    with torch.no_grad():
        model[0].weight[0, 2] = -0.5
    assert onestep.decision_margin(model, x) > 0.1


def test_decision_margin_finds_two_maxpool_candidates_within_rounding():
    conv = torch.nn.Conv2d(1, 1, 1).double()
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(1, 1).double())
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    x = torch.tensor([[[[1.0, 1.0 + 1e-10], [0.25, 0.5]]]], dtype=torch.float64)
    assert onestep.decision_margin(model, x) == pytest.approx(1e-10, rel=1e-3)
    # exactly equal candidates (identical inputs) are computed alike everywhere: not a rounding tie
    assert onestep.decision_margin(model, torch.tensor([[[[1.0, 1.0], [0.25, 0.5]]]], dtype=torch.float64)) > 0.1
    assert onestep.decision_margin(model, x.clone().index_put_((torch.tensor([0]),) * 2 + (torch.tensor([0]),) * 2,
                                                                torch.tensor([0.75], dtype=torch.float64))) > 0.1


def test_step_batches_follow_the_epochs_and_keep_partial_batches():
    order = [np.arange(5), np.arange(5)[::-1]]
    batches = onestep.step_batches(order, 2, 5)
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4], [4, 3], [2, 1]]
