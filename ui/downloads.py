"""Files the app hands out for a user's own case: unlearned weights in their model's layout, and the HTML
report (made when its button is pressed, from what the pages computed)."""
from __future__ import annotations

from typing import Callable

from .state import runtime, uploads


def weights_file(source, module) -> bytes:
    """``module``'s weights as safetensors in the layout of the source's model (what it reads back)."""
    from safetensors.torch import save

    return save(source.export_weights(module))


def case_report_html(case, tau: float | None, k: int | None, methods: tuple[str, ...], until_clean: bool, escalate: bool,
                     suspects) -> Callable[[], str]:
    """A callable making the HTML report at the page's τ/k of the ``suspects`` unlearned there (a
    :class:`~deltainf.suspicion.suspects.SuspectSet` with the analyst's marks) by its methods (all cached). It runs
    in a thread of its own when the button is pressed, so it takes the session's uploads now."""
    cfg = case.config.replace(tau=tau, k=k, unlearn=methods, until_clean=until_clean, escalate=escalate,
                              despite_verdict=True)  # the report follows what the analyst unlearned
    weights, query = uploads(cfg)
    rt = runtime()

    def make() -> str:
        from deltainf.evaluation import case_report
        from deltainf.evaluation.html_report import render

        with rt.compute:  # the engine seeds torch's generator: never beside a running job
            _, at_tk = rt.experiment(cfg, weights, query)
            return render(at_tk, case_report.investigate(at_tk, suspects=suspects), suspects)

    return make
