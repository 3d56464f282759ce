"""Lessons 06 and 07's exercises: references against PyTorch, wrong answers caught, cases well formed."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.exercises import compare, get_exercise, run_checks, to_plain
from course_utils.exercises.core import Case
from course_utils.exercises.lesson06 import run_design, train_step
from course_utils.exercises.lesson07 import batchnorm2d_forward, dropout2d_forward
from course_utils.models import TinyCNN

IDS = ["compact_cnn", "train_step", "evaluate", "batchnorm2d_forward", "dropout2d_forward"]


# A learner's correct answers, written here: the course's references are themselves forbidden inside
# their exercises, so right (and deliberately wrong) answers must not call them.


def train_step_solution(model, optimizer, images, labels):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def bn_solution(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    shape = (1, -1, 1, 1)
    if training:
        m = x.shape[0] * x.shape[2] * x.shape[3]
        mean = x.mean(dim=(0, 2, 3))
        var = ((x - mean.view(shape)) ** 2).mean(dim=(0, 2, 3))
        new_mean = (1 - momentum) * running_mean + momentum * mean
        new_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean.clone(), running_var.clone()
    out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) * weight.view(shape) + bias.view(shape)
    return out, new_mean, new_var


def dropout_solution(x, p, u, training=True):
    if not training:
        return x
    return x * (u >= p).to(x.dtype)[:, :, None, None] / (1 - p)


def graded(exercise_id: str, answer, seed: int = 123, n: int | None = None) -> tuple[int, int]:
    """Grade as the grader does: fresh cases, plain data, compare; return (passed, total)."""
    ex = get_exercise(exercise_id)
    cases = ex.draw_cases(np.random.default_rng(seed), n)
    passed = 0
    for case in cases:
        try:
            got = ex.produce(answer, case)
        except Exception:
            continue
        passed += compare(ex.expected(case), got, rtol=ex.rtol, atol=ex.atol).ok
    return passed, len(cases)


# ---------------------------------------------------------------- the bank


@pytest.mark.parametrize("exercise_id", IDS)
def test_registered_with_lesson_and_points(exercise_id):
    ex = get_exercise(exercise_id)
    assert ex.lesson in ("06_tinycnn_cifar10", "07_batchnorm_dropout")
    assert ex.points > 0 and ex.title and ex.hint


@pytest.mark.parametrize("exercise_id", IDS)
def test_cases_are_reproducible_and_include_edges(exercise_id):
    ex = get_exercise(exercise_id)
    a = ex.draw_cases(np.random.default_rng(5), 12)
    b = ex.draw_cases(np.random.default_rng(5), 12)
    assert len(a) == 12
    assert any(c.label.startswith("edge") for c in a)
    for ca, cb in zip(a, b):
        assert compare(to_plain(list(ca.args)), to_plain(list(cb.args))).ok
        assert compare(ex.expected(ca), ex.expected(cb)).ok


@pytest.mark.parametrize("exercise_id", IDS)
def test_not_attempted_stub(exercise_id):
    def stub(*args, **kwargs):
        raise NotImplementedError("Replace this line with your solution")

    assert run_checks(exercise_id, stub, seed=0, n_random=3).status == "not-attempted"


# ---------------------------------------------------------------- compact_cnn (a design task)


class Design(nn.Module):
    """A learner's design: `features` from the given layers, a flatten or GAP head."""

    def __init__(self, layers, head="flatten", num_classes=10, frozen=False, fixed_classes=None):
        super().__init__()
        self.features = nn.Sequential(*layers)
        classes = fixed_classes or num_classes
        if head == "flatten":
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, classes))
        else:
            self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))
        if frozen:
            for p in self.parameters():
                p.requires_grad_(False)

    def forward(self, x):
        return self.classifier(self.features(x))


def three_pools(widths=(16, 32, 64)):
    layers, c = [], 3
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = w
    return layers


def strided_convs():
    return [nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU()]


def batchnorm_gap():
    return [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU()]


RIGHT_DESIGNS = {
    "three blocks, flatten head": lambda num_classes=10: Design(three_pools(), num_classes=num_classes),
    "32-32-64 widths (38,890 parameters)": lambda num_classes=10: Design(three_pools((32, 32, 64)), num_classes=num_classes),
    "stride-2 convolutions, no pooling": lambda num_classes=10: Design(strided_convs(), num_classes=num_classes),
    "BatchNorm and a GAP head": lambda num_classes=10: Design(batchnorm_gap(), "gap", num_classes=num_classes),
}


class PlusOne(Design):
    def forward(self, x):
        return self.classifier(self.features(x)) + 1  # not classifier(features(x))


WRONG_DESIGNS = {
    # (builder, the fact that must say so)
    "TinyCNN itself (8×8 maps, 60,362 parameters)": (TinyCNN, "shape after features"),
    "over budget: 32-64-64 widths (66,570 parameters)":
        (lambda num_classes=10: Design(three_pools((32, 64, 64)), num_classes=num_classes), "at most 40,000 parameters (10 classes)"),
    "two convolutions and a 4×4 pool":
        (lambda num_classes=10: Design([nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4)], num_classes=num_classes),
         "at least 3 Conv2d layers"),
    "forward adds 1": (lambda num_classes=10: PlusOne(three_pools(), num_classes=num_classes), "forward is classifier(features(x))"),
    "ignores num_classes": (lambda num_classes=10: Design(three_pools(), fixed_classes=10), "output shape"),
}


def test_compact_cnn_reference_meets_its_own_brief():
    from course_utils.exercises.lesson06 import BUDGET, FEATURE_SHAPE, MIN_CONVS, CompactCNN

    model = CompactCNN()
    assert sum(p.numel() for p in model.parameters()) == 33_834 <= BUDGET
    assert tuple(model.features(torch.zeros(3, 3, 32, 32)).shape) == (3, *FEATURE_SHAPE)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) >= MIN_CONVS
    assert sum(p.numel() for p in TinyCNN().parameters()) > BUDGET  # the brief rules out retyping TinyCNN


@pytest.mark.parametrize("name", list(RIGHT_DESIGNS))
def test_compact_cnn_different_right_designs_all_pass(name):
    assert run_checks("compact_cnn", RIGHT_DESIGNS[name], seed=0).passed
    passed, total = graded("compact_cnn", RIGHT_DESIGNS[name], seed=21)
    assert passed == total > 0


@pytest.mark.parametrize("name", list(WRONG_DESIGNS))
def test_compact_cnn_wrong_designs_fail_and_the_check_says_which_point(name):
    builder, fact = WRONG_DESIGNS[name]
    report = run_checks("compact_cnn", builder, seed=0, n_random=1)
    assert not report.passed
    assert fact in report.first_failure.reason, report.first_failure.reason
    passed, total = graded("compact_cnn", builder, seed=21, n=4)
    assert passed < total


def test_compact_cnn_that_cannot_learn_fails_the_learning_cases():
    frozen = lambda num_classes=10: Design(three_pools(), num_classes=num_classes, frozen=True)  # noqa: E731
    ex = get_exercise("compact_cnn")
    cases = ex.draw_cases(np.random.default_rng(21), None)
    learning = [c for c in cases if c.args[3] > 0]
    assert learning and len(learning) < len(cases)
    passed, total = graded("compact_cnn", frozen, seed=21)
    assert passed == total - len(learning)


def test_compact_cnn_learning_check_needs_the_image():
    from course_utils.exercises.adapters import _learn_tiny_task

    # A network that predicts one class gets 4 of 16; the reference designs get (nearly) all.
    constant = lambda num_classes=10: nn.Sequential(nn.Conv2d(3, 1, 1), nn.Flatten(), nn.Linear(1024, num_classes, bias=True))  # noqa: E731
    right, first, last = _learn_tiny_task(RIGHT_DESIGNS["BatchNorm and a GAP head"], 3, 20)
    assert right >= 14 and last < first
    blind = lambda num_classes=10: _Blind(num_classes)  # noqa: E731
    assert _learn_tiny_task(blind, 3, 20)[0] <= 4
    assert _learn_tiny_task(constant, 3, 20)[0] >= 12  # even a linear model can learn this task: it checks learning, not skill


class _Blind(nn.Module):
    """Ignores the image: learns only the class prior, so it cannot beat 4 of 16."""

    def __init__(self, num_classes):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x):
        return self.bias.expand(len(x), -1)


def test_compact_cnn_facts_are_plain_and_readable():
    from course_utils.exercises.lesson06 import CompactCNN, _design_case

    facts = run_design(CompactCNN, _design_case(7, 3, 0, False, "x"))
    assert facts == {
        "output shape": [3, 7],
        "shape after features": [3, 64, 4, 4],
        "forward is classifier(features(x))": True,
        "at most 40,000 parameters (10 classes)": "yes",
        "at least 3 Conv2d layers": "yes",
    }
    over = run_design(WRONG_DESIGNS["over budget: 32-64-64 widths (66,570 parameters)"][0], _design_case(10, 2, 0, False, "x"))
    assert over["at most 40,000 parameters (10 classes)"] == "no: 66,570 parameters"


def test_compact_cnn_rejects_a_non_module_and_a_model_without_features():
    report = run_checks("compact_cnn", lambda num_classes=10: "not a model", seed=0, n_random=1)
    assert report.status == "failed" and "nn.Module" in report.first_failure.got
    report = run_checks("compact_cnn", lambda num_classes=10: nn.Sequential(nn.Flatten(), nn.Linear(3072, num_classes)),
                        seed=0, n_random=1)
    assert report.status == "failed" and "features" in report.first_failure.got


# ---------------------------------------------------------------- train_step


def step_without_zero_grad(model, optimizer, images, labels):
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_without_step(model, optimizer, images, labels):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    return loss.item()


def step_loss_after(model, optimizer, images, labels):
    train_step_solution(model, optimizer, images, labels)
    with torch.no_grad():
        return F.cross_entropy(model(images), labels).item()


def step_returning_tensor(model, optimizer, images, labels):
    criterion = nn.CrossEntropyLoss()
    optimizer.zero_grad(set_to_none=False)
    loss = criterion(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def test_train_step_reference_matches_a_hand_written_sgd_update():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    loss = train_step(model, torch.optim.SGD(model.parameters(), lr=0.5), x, y)
    probe = nn.Linear(4, 3)
    with torch.no_grad():
        for p, b in zip(probe.parameters(), before):
            p.copy_(b)
    expected = F.cross_entropy(probe(x), y)
    grads = torch.autograd.grad(expected, list(probe.parameters()))
    assert isinstance(loss, float) and loss == pytest.approx(expected.item(), rel=1e-6)
    for p, b, g in zip(model.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), b - 0.5 * g)


def test_train_step_right_answers_pass():
    assert run_checks("train_step", train_step_solution, seed=0).passed
    assert run_checks("train_step", step_returning_tensor, seed=0).passed


@pytest.mark.parametrize("wrong", [step_without_zero_grad, step_without_step, step_loss_after])
def test_train_step_wrong_answers_fail(wrong):
    passed, total = graded("train_step", wrong)
    # A single step from fresh gradients cannot tell a missing zero_grad; every longer case does.
    assert passed <= 1 and total > 1


def test_train_step_loss_must_be_a_number():
    report = run_checks("train_step", lambda m, o, x, y: [train_step_solution(m, o, x, y)], seed=0, n_random=1)
    assert report.status == "failed"


# ---------------------------------------------------------------- batchnorm2d_forward


def torch_batchnorm(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    bn = nn.BatchNorm2d(x.shape[1], eps=eps, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
        bn.running_mean.copy_(running_mean)
        bn.running_var.copy_(running_var)
    bn.train(training)
    with torch.no_grad():
        out = bn(x)
    return out, bn.running_mean.clone(), bn.running_var.clone()


def test_batchnorm_reference_matches_nn_batchnorm2d_on_every_case():
    ex = get_exercise("batchnorm2d_forward")
    cases = list(ex.public_cases) + ex.draw_cases(np.random.default_rng(0), 40)
    assert {c.args[5] for c in cases} == {True, False}
    for case in cases:
        mine = batchnorm2d_forward(*[a.clone() if torch.is_tensor(a) else a for a in case.args], **case.kwargs)
        theirs = torch_batchnorm(*case.args, **case.kwargs)
        for m, t in zip(mine, theirs):
            torch.testing.assert_close(m, t, rtol=1e-4, atol=1e-5)


def bn_biased_running_var(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    out, rm, rv = bn_solution(x, weight, bias, running_mean, running_var, training, momentum, eps)
    if training:
        var = x.var(dim=(0, 2, 3), unbiased=False)
        rv = (1 - momentum) * running_var + momentum * var
    return out, rm, rv


def bn_batch_stats_always(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    return bn_solution(x, weight, bias, running_mean, running_var, True, momentum, eps)


def bn_unbiased_normalizer(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    out, rm, rv = bn_solution(x, weight, bias, running_mean, running_var, training, momentum, eps)
    if training:
        mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), keepdim=True)
        out = (x - mean) / torch.sqrt(var + eps) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    return out, rm, rv


def bn_momentum_backwards(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    return bn_solution(x, weight, bias, running_mean, running_var, training, 1 - momentum, eps)


@pytest.mark.parametrize(
    "wrong", [bn_biased_running_var, bn_batch_stats_always, bn_unbiased_normalizer, bn_momentum_backwards]
)
def test_batchnorm_wrong_answers_fail(wrong):
    assert not run_checks("batchnorm2d_forward", wrong, seed=0).passed
    passed, total = graded("batchnorm2d_forward", wrong)
    assert passed < total


def test_batchnorm_in_place_update_is_fine_and_does_not_leak():
    def in_place(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
        out, rm, rv = bn_solution(x, weight, bias, running_mean, running_var, training, momentum, eps)
        running_mean.copy_(rm)
        running_var.copy_(rv)
        return out, running_mean, running_var

    assert run_checks("batchnorm2d_forward", in_place, seed=3).passed
    assert run_checks("batchnorm2d_forward", bn_solution, seed=3).passed


# ---------------------------------------------------------------- dropout2d_forward


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_reference_reproduces_nn_dropout2d(p):
    torch.manual_seed(0)
    x = torch.randn(4, 16, 5, 5) + 3.0  # away from zero so a kept channel is never all zeros
    out = nn.Dropout2d(p).train()(x)
    kept = (out != 0).flatten(2)
    assert bool((kept.all(2) | ~kept.any(2)).all()), "nn.Dropout2d drops whole channels"
    u = kept.all(2).float()  # 1 where PyTorch kept the channel, 0 where it dropped it
    torch.testing.assert_close(dropout2d_forward(x, p, u), out)


def test_dropout_properties_on_fresh_inputs():
    ex = get_exercise("dropout2d_forward")
    for case in ex.draw_cases(np.random.default_rng(9), 30):
        x, p, u = case.args
        out = dropout2d_forward(x, p, u, **case.kwargs)
        if not case.kwargs["training"]:
            assert torch.equal(out, x)
            continue
        zero = (out == 0).flatten(2).all(2)
        assert torch.equal(zero, u < p)
        torch.testing.assert_close(out[~zero], x[~zero] / (1 - p))


def dropout_elementwise(x, p, u, training=True):
    if not training:
        return x
    return x * (torch.rand_like(x) >= p) / (1 - p)


def dropout_unscaled(x, p, u, training=True):
    return x * (u >= p)[:, :, None, None] if training else x


def dropout_ties_dropped(x, p, u, training=True):
    return x * (u > p)[:, :, None, None] / (1 - p) if training else x


def dropout_also_in_eval(x, p, u, training=True):
    return dropout_solution(x, p, u, True)


@pytest.mark.parametrize("wrong", [dropout_elementwise, dropout_unscaled, dropout_ties_dropped, dropout_also_in_eval])
def test_dropout_wrong_answers_fail(wrong):
    passed, total = graded("dropout2d_forward", wrong)
    assert passed < total


def test_dropout_right_answer_passes():
    assert run_checks("dropout2d_forward", dropout_solution, seed=0).passed
    passed, total = graded("dropout2d_forward", dropout_solution, seed=77)
    assert passed == total


# ---------------------------------------------------------------- evaluate (lesson 06)

from course_utils.exercises.lesson06 import run_evaluate  # noqa: E402


def evaluate_solution(model, images, labels, batch_size=256):
    """A learner's correct answer, written here (the course's reference is itself forbidden)."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            scores = model(images[i:i + batch_size])
            loss_sum += F.cross_entropy(scores, labels[i:i + batch_size], reduction="sum").item()
            correct += int((scores.argmax(1) == labels[i:i + batch_size]).sum())
    model.train(was_training)
    return loss_sum / len(images), correct / len(images)


def evaluate_forgets_eval(model, images, labels, batch_size=256):
    with torch.no_grad():
        scores = model(images)
    return F.cross_entropy(scores, labels).item(), (scores.argmax(1) == labels).float().mean().item()


def evaluate_with_gradients(model, images, labels, batch_size=256):
    model.eval()
    scores = model(images)
    result = F.cross_entropy(scores, labels).item(), (scores.argmax(1) == labels).float().mean().item()
    model.train()
    return result


def evaluate_leaves_eval_mode(model, images, labels, batch_size=256):
    model.eval()
    with torch.no_grad():
        scores = model(images)
    return F.cross_entropy(scores, labels).item(), (scores.argmax(1) == labels).float().mean().item()


def evaluate_mean_of_batch_means(model, images, labels, batch_size=256):
    was_training = model.training
    model.eval()
    losses, accs = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            scores = model(images[i:i + batch_size])
            losses.append(F.cross_entropy(scores, labels[i:i + batch_size]).item())
            accs.append((scores.argmax(1) == labels[i:i + batch_size]).float().mean().item())
    model.train(was_training)
    return sum(losses) / len(losses), sum(accs) / len(accs)


def evaluate_with_the_course_helper(model, images, labels, batch_size=256):
    from course_utils import train

    return train.evaluate(model, images, labels, batch_size=batch_size)


def test_evaluate_solution_passes_in_check_and_grading():
    assert run_checks("evaluate", evaluate_solution, seed=0).passed
    passed, total = graded("evaluate", evaluate_solution, seed=5)
    assert passed == total > 0


def test_evaluate_reference_reports_mode_facts_and_batch_weighted_numbers():
    facts = run_evaluate(evaluate_solution, Case((0, 10, 4, True, 4, 3)))
    assert facts["forward passes in eval mode"] and facts["forward passes without gradients"]
    assert facts["mode restored afterwards"] and facts["running statistics untouched"]
    # The same numbers straight from one eval-mode pass over all ten images.
    torch.manual_seed(0)
    from course_utils.exercises.lesson06 import _eval_model

    model = _eval_model(4, 3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model[1].running_mean.copy_(torch.randn(4, generator=gen) * 0.3)
        model[1].running_var.copy_(torch.rand(4, generator=gen) + 0.5)
    images = torch.randn(10, 3, 8, 8, generator=gen) * 2 + 0.5
    labels = torch.randint(0, 3, (10,), generator=gen)
    with torch.no_grad():
        scores = model.eval()(images)
    assert facts["loss"] == pytest.approx(F.cross_entropy(scores, labels).item(), rel=1e-5)
    assert facts["accuracy"] == pytest.approx((scores.argmax(1) == labels).float().mean().item())


@pytest.mark.parametrize("wrong, broken_fact", [
    (evaluate_forgets_eval, "forward passes in eval mode"),
    (evaluate_with_gradients, "forward passes without gradients"),
    (evaluate_leaves_eval_mode, "mode restored afterwards"),
    (evaluate_mean_of_batch_means, None),
])
def test_evaluate_wrong_answers_fail_and_say_why(wrong, broken_fact):
    report = run_checks("evaluate", wrong, seed=0)
    assert not report.passed
    passed, total = graded("evaluate", wrong, seed=11)
    # Some cases hand over a model already in eval mode (or one batch holding every image), where
    # these mistakes happen to give the right answer; every other case must fail.
    cases = get_exercise("evaluate").draw_cases(np.random.default_rng(11), None)
    assert passed < total
    if wrong in (evaluate_forgets_eval, evaluate_leaves_eval_mode):
        assert passed <= sum(not c.args[3] for c in cases)
    if broken_fact is not None:
        facts = run_evaluate(wrong, Case((0, 12, 5, True, 4, 3)))
        assert facts[broken_fact] is False


def test_evaluate_calling_the_course_helper_is_forbidden():
    report = run_checks("evaluate", evaluate_with_the_course_helper, seed=0)
    assert report.status == "failed"
    assert report.first_failure.status == "forbidden"
    assert "course_utils.train.evaluate" in report.first_failure.reason or "evaluate" in report.first_failure.reason
    # In grading, the worker runs each case under the same guard.
    from course_utils.exercises.forbidden import forbid

    ex = get_exercise("evaluate")
    for case in ex.draw_cases(np.random.default_rng(3), 3):
        with forbid(ex) as guard:
            try:
                ex.run(evaluate_with_the_course_helper, case)
            except Exception:
                pass
        assert guard.violations, "calling course_utils.train.evaluate must be recorded as a violation"


def test_evaluate_must_return_two_numbers():
    report = run_checks("evaluate", lambda m, x, y, b=256: evaluate_solution(m, x, y, b)[1], seed=0, n_random=1)
    assert report.status == "failed" and "(loss, accuracy)" in report.first_failure.got


# ---------------------------------------------------------------- lessons 06 and 07 end to end: one grading
# batch per lesson holds the lesson itself (full marks, every cell runs), its untouched released
# workbook (0, every exercise not attempted), wrong answers written from scratch, and copies that
# call a forbidden function (0 on that exercise, and the feedback says why)

import json  # noqa: E402

from graded_batches import assert_solved_and_untouched, grade_lesson_batch  # noqa: E402

# lesson stem -> {submission name: {exercise id: source of its solution cell}}
ATTEMPTS = {
    "06_tinycnn_cifar10": {
        "wrong": {
            # forgets model.eval(): BatchNorm and Dropout run in training mode
            "evaluate": (
                "import torch\nimport torch.nn.functional as F\n"
                "def evaluate(model, images, labels, batch_size=256):\n"
                "    with torch.no_grad():\n"
                "        scores = model(images)\n"
                "    return F.cross_entropy(scores, labels).item(), (scores.argmax(1) == labels).float().mean().item()\n"
            ),
            # over the budget: widths 32-64-64 make 66,570 parameters
            "compact_cnn": (
                "import torch.nn as nn\n"
                "class CompactCNN(nn.Module):\n"
                "    def __init__(self, num_classes=10):\n"
                "        super().__init__()\n"
                "        self.features = nn.Sequential(\n"
                "            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
                "            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),\n"
                "            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))\n"
                "        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, num_classes))\n"
                "    def forward(self, x):\n"
                "        return self.classifier(self.features(x))\n"
            ),
        },
        "forbidden": {
            # hands the work to the course's own helper
            "evaluate": (
                "from course_utils import train as _t\n"
                "def evaluate(model, images, labels, batch_size=256):\n"
                "    return _t.evaluate(model, images, labels, batch_size=batch_size)\n"
            ),
        },
    },
    "07_batchnorm_dropout": {
        "wrong": {
            # the running variance moves toward the biased variance instead of the unbiased one
            "batchnorm2d_forward": (
                "import torch\n"
                "def batchnorm2d_forward(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):\n"
                "    s = (1, -1, 1, 1)\n"
                "    if training:\n"
                "        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)\n"
                "        rm = (1 - momentum) * running_mean + momentum * mean\n"
                "        rv = (1 - momentum) * running_var + momentum * var\n"
                "    else:\n"
                "        mean, var, rm, rv = running_mean, running_var, running_mean.clone(), running_var.clone()\n"
                "    return (x - mean.view(s)) / torch.sqrt(var.view(s) + eps) * weight.view(s) + bias.view(s), rm, rv\n"
            ),
            # forgets to scale the kept channels by 1/(1-p)
            "dropout2d_forward": (
                "def dropout2d_forward(x, p, u, training=True):\n"
                "    return x * (u >= p)[:, :, None, None] if training else x\n"
            ),
        },
        "forbidden": {
            "batchnorm2d_forward": (
                "import torch.nn.functional as F\n"
                "def batchnorm2d_forward(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):\n"
                "    rm, rv = running_mean.clone(), running_var.clone()\n"
                "    return F.batch_norm(x, rm, rv, weight, bias, training, momentum, eps), rm, rv\n"
            ),
            "dropout2d_forward": (
                "import torch.nn.functional as F\n"
                "def dropout2d_forward(x, p, u, training=True):\n"
                "    return F.dropout2d(x, p, training)\n"
            ),
        },
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("stem", list(ATTEMPTS))
def test_lesson_graded_end_to_end_in_one_batch(tmp_path, monkeypatch, stem):
    monkeypatch.setenv("COURSE_QUICK", "1")  # the lesson's training cells only need to run, not learn
    batch = grade_lesson_batch(tmp_path, stem, ATTEMPTS[stem], seed=4321)
    students, out = batch.students, batch.out
    ids = [ex.id for ex in batch.exercises]
    assert sorted(students) == sorted(["solved", "untouched", *ATTEMPTS[stem]])
    # the lesson itself: full marks, every cell runs in the grading process too; the untouched
    # released workbook: 0, every exercise not attempted
    assert_solved_and_untouched(batch)
    assert sorted(students["solved"]["exercises"]) == sorted(ids)
    # wrong answers from scratch: below full marks. Only the over-budget design fails every case; the
    # others are right in evaluation mode (a model handed over in eval mode, training=False), which
    # some graded cases use
    wrong = students["wrong"]
    assert wrong["status"] == "ok", wrong.get("detail")
    for exercise_id in ids:
        score = wrong["exercises"][exercise_id]
        if exercise_id in ATTEMPTS[stem]["wrong"]:
            assert score["score"] < get_exercise(exercise_id).points, score
            if exercise_id == "compact_cnn":
                assert score["score"] == 0, score
        else:
            assert score["score"] == 0 and score["status"] == "not-attempted", score
    # a copy that calls the forbidden function: 0 on that exercise, and the feedback says why
    cheat = students["forbidden"]
    assert cheat["status"] == "ok", cheat.get("detail")
    feedback = (out / "feedback" / "forbidden.md").read_text()
    assert "off-limits" in feedback
    for exercise_id in ATTEMPTS[stem]["forbidden"]:
        assert cheat["exercises"][exercise_id]["score"] == 0, cheat["exercises"][exercise_id]
        assert "off-limits" in json.dumps(cheat["exercises"][exercise_id]), cheat["exercises"][exercise_id]
