"""docs/scaling.md is `python -m bench scaling`'s output, and deploy/k8s is sized by it.

The plan rests on the committed stack benchmark (docs/bench-stack.json): the
test recomputes it, compares it with the docs' block, and holds the manifests'
cpu requests, worker count, HPA targets and bounds to it.
"""

from __future__ import annotations

import json

from k8s_manifests import ROOT, container, env_of, find, render

from bench import scaling

DOCS = ROOT / "docs" / "scaling.md"
FIGURES = ROOT / "docs" / "bench-stack.json"
DEFAULTS = {"headroom": 0.7, "min_replicas": 2, "logic_workers": 2, "graph_cores": 1}


def _data() -> dict:
    return json.loads(FIGURES.read_text())


def test_docs_hold_the_commands_output() -> None:
    document = DOCS.read_text()
    block = document.split(scaling.SECTION.begin, 1)[1].split(scaling.SECTION.end, 1)[0]
    assert block.strip() == scaling.report_from(_data()).strip(), (
        "docs/scaling.md is not the output of `python -m bench scaling --docs docs/scaling.md` "
        "for docs/bench-stack.json: rerun it"
    )


def _plans() -> list[scaling.Plan]:
    bases = scaling.tier_bases(_data(), "tierkit-grpc", 100.0)
    return scaling.plan(bases, **DEFAULTS)


def test_the_plan_meets_every_tier_with_headroom() -> None:
    bases = scaling.tier_bases(_data(), "tierkit-grpc", 100.0)
    for plan in _plans():
        logic_capacity = bases[scaling.LOGIC].per_core * plan.logic_pods * plan.logic_workers
        graph_capacity = bases[scaling.GRAPH].per_core * plan.graph_pods * plan.graph_cores
        assert plan.rate <= 0.7 * logic_capacity and plan.rate <= 0.7 * graph_capacity
        assert plan.logic_pods >= 2 and plan.graph_pods >= 2


def test_production_is_sized_by_the_plan() -> None:
    objects = render("overlays/production")
    logic = container(objects, "tierkit-logic", "logic")
    graph = container(objects, "tierkit-graph", "tfserving")
    workers = int(env_of(logic)["TIERKIT_WORKERS"]["value"])
    assert workers == DEFAULTS["logic_workers"]
    # one core per worker, requested and allowed
    assert (
        logic["resources"]["requests"]["cpu"] == logic["resources"]["limits"]["cpu"] == str(workers)
    )
    assert graph["resources"]["requests"]["cpu"] == str(DEFAULTS["graph_cores"])
    ceilings = scaling.hpa_max(_plans())
    for name, tier in (("tierkit-logic", scaling.LOGIC), ("tierkit-graph", scaling.GRAPH)):
        hpa = find(objects, "HorizontalPodAutoscaler", name)["spec"]
        (metric,) = hpa["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["averageUtilization"] == round(
            100 * DEFAULTS["headroom"]
        )
        assert hpa["minReplicas"] == DEFAULTS["min_replicas"]
        assert hpa["maxReplicas"] == ceilings[tier], name


def test_kserve_is_sized_as_the_plain_tiers() -> None:
    isvc = find(render("overlays/kserve"), "InferenceService", "ctr")["spec"]
    ceilings = scaling.hpa_max(_plans())
    for component, tier in (("transformer", scaling.LOGIC), ("predictor", scaling.GRAPH)):
        spec = isvc[component]
        assert spec["scaleMetric"] == "cpu" and spec["scaleTarget"] == 70
        assert spec["minReplicas"] == 2 and spec["maxReplicas"] == ceilings[tier]
