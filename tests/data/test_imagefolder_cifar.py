"""Real natural images through the product's own ImageFolder path: a CIFAR-10 subset, small CNN, CPU."""
import pytest

from cifar_folder import NPZ, write_cifar_imagefolder
from deltainf import Config
from deltainf.experiment import Experiment
from deltainf.store import Store

pytestmark = pytest.mark.skipif(not NPZ.exists(), reason=f"{NPZ} is absent")


@pytest.fixture(scope="module")
def cifar_exp(tmp_path_factory):
    root = write_cifar_imagefolder(tmp_path_factory.mktemp("cifar") / "data", per_class_train=200, per_class_test=50)
    cache = tmp_path_factory.mktemp("cifar-cache")
    cfg = Config(dataset="imagefolder", data_root=str(root), image_size=32, seed=0, cache_dir=str(cache))
    return Experiment(cfg, store=Store(cache))


def test_layout_is_read_as_cifar(cifar_exp):
    d = cifar_exp.data
    assert d.classes[:3] == ["airplane", "automobile", "bird"] and d.num_classes == 10
    assert d.x_train.shape == (2000, 3, 32, 32) and len(d.y_test) == 500


def test_badnet_implants_and_delta_influence_finds_it(cifar_exp):
    assert cifar_exp.model_metrics["poison_success"] >= 0.8
    assert cifar_exp.model_metrics["clean_acc"] >= 0.3  # 2,000 images, 12 epochs, no augmentation
    d = cifar_exp.detection_report("delta_influence")
    e = cifar_exp.detection_report("ekfac")
    assert d["tpr"] >= 0.5
    assert d["precision"] >= 2 * e["precision"]


def test_table_runs_badnet_and_frequency_on_cifar(cifar_exp, tmp_path, capsys):
    """The paper's grid on real images: BadNet and the frequency trigger through ``python -m deltainf table``
    (one seed, every detector that needs no extra scoring pass), sharing the cache with the experiment above."""
    import json

    from deltainf.cli import main

    cfg = cifar_exp.config
    detectors = ["delta_influence", "ekfac", "actclust", "specsig", "freqdef"]
    rc = main(["table", "--datasets", "imagefolder", "--data-root", cfg.data_root, "--attacks", "badnet,frequency",
               "--detectors", ",".join(detectors), "--seeds", "0", "--no-unlearn", "--cache-dir", cfg.cache_dir,
               "--out", str(tmp_path / "grid"), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| imagefolder | frequency | delta_influence |" in out
    cells = {(c["attack"], c["detector"]): c for c in json.loads((tmp_path / "grid.json").read_text())["cells"]}
    assert set(cells) == {(a, d) for a in ("badnet", "frequency") for d in detectors}
    for attack in ("badnet", "frequency"):
        assert cells[(attack, "delta_influence")]["implanted"], attack
        assert cells[(attack, "delta_influence")]["poison_success"] >= 0.8
        # Δ-Influence beats naive EK-FAC's precision on real images too.
        assert cells[(attack, "delta_influence")]["precision"] > 2 * cells[(attack, "ekfac")]["precision"]
        # ... and has the best F1 of every detector here (the frequency defence finds BadNet's patch but
        # also flags many clean natural images; no baseline finds the smooth trigger).
        f1 = {d: cells[(attack, d)]["f1"] for d in detectors}
        assert max(f1, key=f1.get) == "delta_influence", (attack, f1)
    assert "**" in out  # the best F1 of each attack is marked
    assert (tmp_path / "grid.md").exists() and (tmp_path / "grid.csv").exists()


def test_the_poisons_shared_signal_sends_images_of_other_labels_to_the_target(cifar_exp):
    """The verdict's transfer on real images: BadNet's poisons' mean image (minus the training set's) added to images
    of other labels sends most of them to the target under the poisoned model; as many random clean images of the
    target class do not; and the verdict on the triggered image counts it."""
    from deltainf.models.training import predict_logits
    from deltainf.suspicion.transfer import sent_to
    from deltainf.verdict import control

    d, y = cifar_exp.poisoned.data, cifar_exp.poisoned.target
    labels, poisons = d.y_train.numpy(), cifar_exp.poisoned.is_poison

    def predict(x):
        return predict_logits(cifar_exp.model, x, cifar_exp.device).argmax(1).numpy()

    sends = sent_to(d.x_train, labels, y, predict, seed=0)
    clean = control(poisons, labels, y, 0, among=~poisons)
    assert sends(poisons) >= 0.5 > 0.3 >= sends(clean)
    assert sent_to(d.x_train, labels, y, predict, seed=0)(poisons) == sends(poisons)  # seeded: the same images
    v = cifar_exp.investigation.verdict()
    assert v.poisoned and v.parts["transfer"] >= 0.4, v.as_dict()
