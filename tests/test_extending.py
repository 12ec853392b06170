"""Adding a detector, an attack, an unlearning method or a data source is one new file: dropped into a copy of
the package, it is registered, gets its Config fields and command-line flags from its settings, and runs.
Nothing else is edited."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NEW_FILES = {
    "detectors/largest_loss.py": '''
        """Flag the training points with the largest naive EK-FAC score (a toy detector)."""
        from dataclasses import dataclass

        import numpy as np

        from ..options import option
        from . import CONFIGURED, Detection, register


        @dataclass(frozen=True)
        class TopSettings:
            top_count: int = option(5, "how many points to flag", low=1)


        @register("top_score", settings=TopSettings, modes=(CONFIGURED,))
        def top_score(inputs, s):
            """Top score: the points most supporting the query."""
            score = inputs.scores[inputs.mode][0]
            flagged = np.zeros(len(score), bool)
            flagged[np.argsort(-score)[:s.top_count]] = True
            return Detection("top_score", flagged, score, {"top_count": s.top_count})
    ''',
    "attacks/corner_dot.py": '''
        """A one-pixel dirty-label trigger (a toy attack)."""
        from dataclasses import dataclass

        import torch

        from ..options import option
        from . import Attack, register, relabel_with_trigger, victim_and_target


        @dataclass(frozen=True)
        class DotSettings:
            dot_value: int = option(255, "grey level of the dot", low=0)


        @register("corner_dot", settings=DotSettings)
        class CornerDot(Attack):
            """Corner dot: one bright pixel in the top-left corner, relabelled to the target."""

            def poison(self, data, ctx, s):
                victim, target = victim_and_target(ctx, data.num_classes)
                mask = torch.zeros(data.image_shape[1:], dtype=torch.bool)
                mask[0, 0] = True
                pattern = torch.full(data.image_shape, s.dot_value, dtype=torch.uint8)
                return relabel_with_trigger(ctx, data, victim, target, lambda x: torch.where(mask, pattern, x), mask,
                                            pattern)
    ''',
    "unlearning/keep.py": '''
        """Leave the model as it is (a toy method, the baseline of baselines)."""
        import copy
        from dataclasses import dataclass

        from ..options import option
        from . import register


        @dataclass(frozen=True)
        class KeepSettings:
            keep_note: str = option("as is", "a note for the report")


        @register("keep", settings=KeepSettings)
        def keep(inputs, s):
            """Keep: the trained model, unchanged."""
            return copy.deepcopy(inputs.model).eval()
    ''',
    "data/stripes.py": '''
        """Synthetic stripes (a toy data source)."""
        import torch

        from . import ImageData, register


        @register("stripes", label="stripes")
        def stripes(root, *, seed, image_size, default_root=None):
            """Stripes: two classes of 8×8 images, horizontal or vertical stripes."""
            g = torch.Generator().manual_seed(seed)
            y = torch.randint(0, 2, (40,), generator=g)
            base = (torch.arange(8) % 2 * 255).to(torch.uint8)
            x = torch.stack([base[:, None].expand(8, 8) if c else base[None, :].expand(8, 8) for c in y.tolist()])
            x = x[:, None].expand(-1, 3, -1, -1).contiguous()
            return ImageData("stripes", ["horizontal", "vertical"], x[:30], y[:30], x[30:], y[30:])
    ''',
}

CHECKS = {
    "detectors/largest_loss.py": '''
        import sys
        from deltainf.config import Config
        from deltainf.experiment import Experiment
        from deltainf.store import Store
        cfg = Config(detectors=("top_score",), top_count=7, cache_dir=sys.argv[1])
        det = Experiment(cfg, store=Store(sys.argv[1])).detect("top_score")
        assert det.flagged.sum() == 7, det.flagged.sum()
    ''',
    "attacks/corner_dot.py": '''
        import torch
        from deltainf.config import Config
        from deltainf.data import load_dataset
        from deltainf.experiment import plant
        p = plant(Config(attack="corner_dot", dot_value=200, victim=1, target=2), load_dataset("digits", None, 0),
                  torch.device("cpu"))
        assert (p.data.x_train[p.poison_idx][:, :, 0, 0] == 200).all() and (p.data.y_train[p.poison_idx] == 2).all()
    ''',
    "unlearning/keep.py": '''
        import numpy as np, torch
        from deltainf.config import Config
        from deltainf.models.training import Recipe
        from deltainf.unlearning import UNLEARNERS, UnlearnInput
        recipe = Recipe("cnn", 10, 1, 1e-3, 8, 0.0, 0.0, 0, torch.device("cpu"), mean=torch.zeros(3), std=torch.ones(3))
        model = recipe.new_model()
        e = UNLEARNERS["keep"]
        out = e(UnlearnInput(model, None, None, np.zeros(3, bool), recipe), e.settings_from(Config(unlearn=("keep",))))
        assert all(torch.equal(a, b) for a, b in zip(out.state_dict().values(), model.state_dict().values()))
    ''',
    "data/stripes.py": '''
        from deltainf.config import Config
        from deltainf.data import load_dataset
        Config(dataset="stripes")
        d = load_dataset("stripes", None, seed=0)
        assert d.classes == ["horizontal", "vertical"] and d.x_train.shape == (30, 3, 8, 8)
    ''',
}
FLAGS = {"detectors/largest_loss.py": "--top-count", "attacks/corner_dot.py": "--dot-value",
         "unlearning/keep.py": "--keep-note", "data/stripes.py": "stripes"}


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("extended")
    shutil.copytree(ROOT / "deltainf", root / "deltainf", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.startswith("detectors") else p
                                  for p in NEW_FILES])
def test_one_new_file_adds_an_entry(path, package_copy, cache_dir, request):
    if path.startswith("detectors"):
        request.getfixturevalue("demo")  # the built-in experiment's cache: the new detector runs on its scores
    (package_copy / "deltainf" / path).write_text(textwrap.dedent(NEW_FILES[path]))
    env = {"PYTHONPATH": str(package_copy), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "deltainf", "run", "--help"]
    helptext = subprocess.run(run, cwd=package_copy, env=env, capture_output=True, text=True, timeout=300)
    assert helptext.returncode == 0, helptext.stderr
    assert FLAGS[path] in helptext.stdout  # its settings (or its name) reach the command line
    check = subprocess.run([sys.executable, "-c", textwrap.dedent(CHECKS[path]), str(cache_dir)], cwd=package_copy,
                           env=env, capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr[-2000:]
