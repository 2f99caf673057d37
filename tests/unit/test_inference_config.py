"""The ``models:`` section and model routes in the config (gwcore/config.py): every problem is
an error naming the key path, and a valid config keeps its values."""

from __future__ import annotations

import copy

import pytest

from gwcore.config import ConfigError, StickyOn, parse

BASE = {
    "listeners": [{"name": "public", "address": "127.0.0.1:8080"}],
    "clusters": [{"name": n, "endpoints": ["127.0.0.1:9001"]}
                 for n in ("v7", "v8", "v9", "eu")],
    "models": {"ranker": {"versions": [{"name": "v7", "cluster": "v7", "weight": 95},
                                       {"name": "v8", "cluster": "v8", "weight": 5}],
                          "mirror": {"cluster": "v9", "percent": 10},
                          "fallback": ["eu", "v8"], "max_in_flight": 4,
                          "queue_timeout": "500ms", "sticky_on": "source_ip"}},
    "routes": [{"match": {"path_prefix": "/v1/"}, "model_from": {"json_field": "model"},
                "version_header": "X-Model-Version"},
               {"match": {"path_prefix": "/"},
                "cluster": [{"name": "v7", "weight": 90}, {"name": "v8", "weight": 10}]}],
}


def config(change=None) -> str:
    import yaml

    data = copy.deepcopy(BASE)
    if change is not None:
        change(data)
    return yaml.safe_dump(data)


def test_a_valid_model_config_keeps_its_values():
    cfg = parse(config(), "g.yaml")
    m = cfg.models["ranker"]
    assert [(v.name, v.cluster, v.weight) for v in m.versions] == [("v7", "v7", 95),
                                                                   ("v8", "v8", 5)]
    assert m.mirror.percent == 10 and m.mirror.max_in_flight == 64
    assert m.queue_timeout == 0.5 and m.queue == 1024
    assert m.sticky_on == StickyOn(source_ip=True)
    route, split = cfg.routes
    assert route.cluster is None and route.model_from.max_body_bytes == 1 << 20
    assert route.cluster_names == [] and route.cluster_label == ""
    assert split.cluster_names == ["v7", "v8"] and split.cluster_label == "v7"


def _set(path: str, value):
    def change(d):
        *head, last = path.split(".")
        node = d
        for k in head:
            node = node[int(k)] if k.isdigit() else node[k]
        if value is KeyError:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set("routes.0.cluster", "v7"), "routes[0].cluster: a route has a cluster or model_from"),
    (_set("routes.1.cluster", KeyError), ("routes[1].cluster: a route has a cluster or "
                                         "model_from")),
    (_set("routes.1.cluster", [{"name": "nope"}]), ("routes[1].cluster[0].name: unknown "
                                                   "cluster 'nope'")),
    (_set("routes.1.cluster", [{"name": "v7", "weight": 0}]),
     "routes[1].cluster: at least one cluster needs a weight above 0"),
    (_set("routes.0.model_from", {"json_field": "model", "header": "X"}),
     "routes[0].model_from.json_field: give exactly one"),
    (_set("routes.0.model_from", {"path_regex": "^/v1/[a-z]+"}),
     "routes[0].model_from.path_regex: needs a group"),
    (_set("routes.0.model_from", {"path_regex": "(unclosed"}),
     "routes[0].model_from.path_regex: missing )"),
    (_set("routes.0.models", ["nope"]), "routes[0].models[0]: unknown model 'nope'"),
    (_set("routes.1.models", ["ranker"]), "routes[1].models: only a route with model_from"),
    (_set("routes.0.version_header", "X Bad"), "routes[0].version_header: 'X Bad' is not"),
    (_set("models.ranker.versions", []), "models.ranker.versions: a model needs at least"),
    (_set("models.ranker.versions.0.cluster", "nope"),
     "models.ranker.versions[0].cluster: unknown cluster 'nope'"),
    (_set("models.ranker.versions.1.name", "v7"), "models.ranker.versions: the same version"),
    (_set("models.ranker.fallback", ["mars"]),
     "models.ranker.fallback[0]: 'mars' is neither a cluster nor a version"),
    (_set("models.ranker.mirror.cluster", "v7"),
     "models.ranker.mirror.cluster: 'v7' already serves a version"),
    (_set("models.ranker.mirror.percent", 0), "models.ranker.mirror.percent: must be more"),
    (_set("models.ranker.max_in_flight", 0), "models.ranker.max_in_flight: must be at least"),
    (_set("models.ranker.sticky_on", {"jwt_claim": "sub"}),
     "models.ranker.sticky_on.jwt_claim: routes[0] serves 'ranker' without jwt"),
    (_set("models.ranker.sticky_on", {"header": "X", "source_ip": True}),
     "models.ranker.sticky_on.jwt_claim: give exactly one"),
    (_set("models", {}), "routes[0].model_from: the config has no models section"),
    (_set("routes.0.models", []), "routes[0].models: list the models"),
    (_set("routes.0.cache", {}), "routes[0].cache: a model route is not cached"),
    (_set("routes.0.priority", "urgent"), "routes[0].priority"),
    (_set("routes.0.priority", -1), "routes[0].priority: must be between 0"),
    (_set("clusters.3.concurrency", {"max": 4}),
     "models.ranker.fallback[0]: cluster 'eu' has concurrency"),
    (_set("clusters.0.concurrency", {"max": 4}),
     "routes[1].cluster[0].name: cluster 'v7' has concurrency"),
    (_set("clusters.1.shedding", {"max_in_flight": 4}),
     "routes[1].cluster[1].name: cluster 'v8' has shedding"),
])

def test_errors_name_the_key_path(change, message):
    with pytest.raises(ConfigError) as e:
        parse(config(change), "g.yaml")
    assert str(e.value).startswith("g.yaml: " + message.split(":")[0]), str(e.value)
    assert message in str(e.value)


@pytest.mark.parametrize("given, priority", [("critical", 0), ("standard", 1),
                                             ("sheddable", 2), (5, 5)])
def test_priority_by_criticality(given, priority):
    cfg = parse(config(_set("routes.0.priority", given)), "g.yaml")
    assert cfg.routes[0].priority == priority
