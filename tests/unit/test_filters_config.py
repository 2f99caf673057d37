"""Filters from config: the ``filters`` keys and route ``name`` (gwcore.config), resolving and
building filters by name or import path (gwcore.runtime), the examples in examples/filters.py
on a real Exchange, and the request view filters read (``header``, ``query``)."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from gwcore import runtime
from gwcore.config import ConfigError, FilterSpec, parse
from gwcore.filters import Exchange, Response, run_request_filters
from gwcore.filters.jwt_auth import JwtAuth
from gwcore.http import parse_request
from gwcore.proxy._router import Router

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE = """\
listeners: [{name: public, address: "127.0.0.1:8080"}]
clusters: [{name: video, endpoints: ["127.0.0.1:9001"]}]
jwt_providers:
  p: {algorithms: [HS256], jwks: {url: "https://auth.example/jwks.json"}}
"""


def config(text: str, source: str = "g.yaml"):
    return parse(BASE + textwrap.dedent(text), source)


# --------------------------------------------------------------------------- config


def test_filter_keys_and_route_names_are_typed():
    cfg = config("""\
        filters:
          - {use: "mypkg.edge:AddRegion", config: {region: eu-west-1}}
          - {use: jwt, config: {provider: p}}
        routes:
          - {name: api, match: {path_prefix: /v1/}, cluster: video, jwt: p,
             filters: [{use: "mypkg.edge:DenyCountries", config: {deny: [XX]}}]}
          - {cluster: video}
        """)
    assert cfg.filters == [FilterSpec(use="mypkg.edge:AddRegion", config={"region": "eu-west-1"}),
                           FilterSpec(use="jwt", config={"provider": "p"})]
    assert cfg.routes[0].name == "api" and cfg.routes[1].name is None
    assert cfg.routes[0].filters[0].config == {"deny": ["XX"]}
    assert cfg.routes[1].filters == [] and FilterSpec(use="x:Y").config == {}
    # the Router names routes as the config validation assumes
    router = Router(cfg.routes, {"video": "cluster"})
    assert [router.match(b"", t, b"GET").name for t in (b"/v1/x", b"/x")] == ["api", "route-1"]


@pytest.mark.parametrize("routes, message", [
    ("[{cluster: video, filters: [{config: {}}]}]",
     "g.yaml: routes[0].filters[0].use: missing required key"),
    ("[{cluster: video, filters: [{use: 'a:B', cfg: {}}]}]",
     "g.yaml: routes[0].filters[0].cfg: unknown key"),
    ("[{cluster: video, filters: [{use: 'a:B', config: [1]}]}]",
     "g.yaml: routes[0].filters[0].config: Expected `object`, got `array`"),
    ("[{cluster: video, name: a}, {cluster: video, name: a}]",
     "g.yaml: routes[1].name: duplicate name 'a': also routes[0]"),
    ("[{cluster: video, name: route-1}, {cluster: video}]",
     "g.yaml: routes[0].name: duplicate name 'route-1': also routes[1] (its default name)"),
    ("[{cluster: video}, {cluster: video, name: route-0}]",
     "g.yaml: routes[1].name: duplicate name 'route-0': also routes[0] (its default name)"),
    ("[{cluster: video, name: 'a b'}]",
     "g.yaml: routes[0].name: 'a b' is not a name"),
    ("[{cluster: video, name: ''}]", "g.yaml: routes[0].name: '' is not a name"),
])
def test_config_errors_name_the_key_path(routes, message):
    with pytest.raises(ConfigError) as e:
        config(f"routes: {routes}\n")
    assert str(e.value).startswith(message), str(e.value)


def test_a_route_may_take_its_own_default_name_or_one_no_other_route_has():
    cfg = config("routes: [{cluster: video, name: route-0}, {cluster: video, name: route-5},"
                 " {cluster: video}]\n")
    assert [r.name for r in cfg.routes] == ["route-0", "route-5", None]


def test_a_global_filters_entry_is_checked_like_a_routes():
    with pytest.raises(ConfigError, match=r"^g.yaml: filters\[0\]\.use: missing required key$"):
        config("filters: [{}]\nroutes: [{cluster: video}]\n")


# --------------------------------------------------------------------------- loading


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of filters on sys.path under a fresh name; returns its name."""
    name = f"gw_unit_filters_{next(_ids)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""\
        built = []

        class Mark:
            def __init__(self, config):
                self.name = config["name"]
                built.append(self.name)
            def on_request(self, exchange):
                exchange.state.setdefault("order", []).append(self.name)
            def __repr__(self):
                return f"Mark({self.name})"

        class Picky:
            def __init__(self, config):
                if config.get("level") not in (1, 2):
                    raise ValueError(f"level: expected 1 or 2, got {config.get('level')!r}")
            def on_log(self, exchange):
                pass

        class Nothing:
            def __init__(self, config):
                pass

        class AsyncLog:
            def __init__(self, config):
                pass
            async def on_request(self, exchange):
                return None
            async def on_log(self, exchange):
                pass

        class Outer:
            class Inner(Mark):
                pass

        NOT_CALLABLE = 5
        """))
    (tmp_path / f"{name}_broken.py").write_text("import gw_no_such_dependency\n")
    (tmp_path / f"{name}_raises.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


_ids = itertools.count()


def build(text: str, context=None):
    """Each route's filters."""
    return runtime.build_filters(config(text), context, "g.yaml")


def test_order_global_then_jwt_shorthand_then_the_routes_and_each_built_once(user_module):
    ctx = runtime.FilterContext({"p": "provider-p"})
    m = f"{user_module}:Mark"
    text = textwrap.dedent(f"""\
        filters: [{{use: "{m}", config: {{name: g1}}}}, {{use: "{m}", config: {{name: g2}}}}]
        routes:
          - {{cluster: video, jwt: {{provider: p, optional: true}},
             filters: [{{use: "{m}", config: {{name: r0}}}}]}}
          - {{cluster: video, filters: [{{use: jwt, config: {{provider: p}}}},
                                        {{use: "{user_module}:Outer.Inner", config: {{name: r1}}}}]}}
          - {{cluster: video}}
        """)
    shared, (r0, r1, r2) = runtime.filter_chains(config(text), ctx)
    assert shared == r2                     # the global ones alone
    assert [getattr(f, "name", None) for f in r0] == ["g1", "g2", None, "r0"]
    assert isinstance(r0[2], JwtAuth) and r0[2].provider == "provider-p" and r0[2].optional
    assert [getattr(f, "name", None) for f in r1] == ["g1", "g2", None, "r1"]
    assert isinstance(r1[2], JwtAuth) and not r1[2].optional
    assert r2 == r0[:2]
    assert r0[0] is r1[0] is r2[0]          # a global filter: one object for every route
    import importlib
    assert importlib.import_module(user_module).built == ["g1", "g2", "r0", "r1"]
    ex = Exchange(parse_request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"))
    run_request_filters(ex, [f.on_request for f in r2])
    assert ex.state["order"] == ["g1", "g2"]


def test_check_mode_validates_built_ins_without_building_them(user_module):
    built = build(f"""\
        filters: [{{use: jwt, config: {{provider: p}}}}]
        routes: [{{cluster: video, jwt: p, filters: [{{use: "{user_module}:Picky",
                                                       config: {{level: 1}}}}]}}]
        """)
    assert [type(f).__name__ for f in built[0]] == ["Picky"]


@pytest.mark.parametrize("use, conf, problem", [
    ("gw_no_such_module:X", "{}", "filters[0].use: no module named 'gw_no_such_module'"),
    ("{m}.nope:X", "{}", "filters[0].use: no module named '{m}.nope'"),
    ("{m}:Missing", "{}", "filters[0].use: module '{m}' has no 'Missing'"),
    ("{m}:Outer.Missing", "{}", "filters[0].use: module '{m}' has no 'Outer.Missing'"),
    ("{m}:NOT_CALLABLE", "{}", "filters[0].use: '{m}:NOT_CALLABLE' is not a class"),
    ("{m}_broken:X", "{}",
     "filters[0].use: importing '{m}_broken' failed: No module named 'gw_no_such_dependency'"),
    ("{m}_raises:X", "{}", "filters[0].use: importing '{m}_raises' failed: RuntimeError: boom"),
    (":X", "{}", "filters[0].use: expected 'package.module:Class', got ':X'"),
    ("{m}:", "{}", "filters[0].use: expected 'package.module:Class', got '{m}:'"),
    ("{m}:Picky", "{level: 3}", "filters[0].config: level: expected 1 or 2, got 3"),
    ("{m}:Mark", "{}", "filters[0].config: missing key 'name'"),
    ("{m}:Nothing", "{}", ("filters[0].use: '{m}:Nothing' implements none of on_request, "
                          "on_response_head, on_response_body, on_log")),
    ("{m}:AsyncLog", "{}", ("filters[0].use: {m}:AsyncLog.on_log is a coroutine function; "
                           "only on_request may return an awaitable")),
    ("jwtt", "{}", ("filters[0].use: unknown filter 'jwtt': the built-in filters are cache, "
                   "ip_acl, jwt; a user filter is 'package.module:Class'")),
    ("jwt", "{}", "filters[0].config.provider: missing required key"),
    ("jwt", "{provider: q}", "filters[0].config.provider: unknown jwt provider 'q'"),
    ("jwt", "{provider: p, optional: maybe}",
     "filters[0].config.optional: Expected `bool`, got `str`"),
    ("jwt", "{provider: p, issuer: x}", "filters[0].config.issuer: unknown key"),
])
def test_loading_errors_name_the_key_path(user_module, use, conf, problem):
    use, problem = use.format(m=user_module), problem.format(m=user_module)
    with pytest.raises(ConfigError) as e:
        build(f'filters: [{{use: "{use}", config: {conf}}}]\nroutes: [{{cluster: video}}]\n')
    assert str(e.value).startswith(f"g.yaml: {problem}"), str(e.value)
    # route filters are named by their own path, and check reports the same
    cfg = config(f'routes: [{{cluster: video}}, {{cluster: video, filters: '
                 f'[{{use: "{use}", config: {conf}}}]}}]\n')
    with pytest.raises(ConfigError) as e:
        runtime.check(cfg, "g.yaml")
    assert str(e.value).startswith(f"g.yaml: routes[1].{problem}"), str(e.value)


def test_the_jwt_shorthand_and_a_jwt_entry_on_one_route_is_an_error():
    with pytest.raises(ConfigError, match=r"^g.yaml: routes\[0\]\.filters\[0\]\.use: the "
                                          r"route's jwt key runs the jwt filter already$"):
        build("routes: [{cluster: video, jwt: p, filters: [{use: jwt, config: {provider: p}}]}]\n")


def test_check_imports_nothing_for_a_config_without_filters():
    runtime.check(config("routes: [{cluster: video}]\n"))


# --------------------------------------------------------------------------- examples


def example_filters(monkeypatch, text: str):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return build(text, runtime.FilterContext())[0]


def exchange(client: str = "127.0.0.1", head: bytes = b"GET /v1/x?a=1 HTTP/1.1\r\nHost: h\r\n"
             b"X-Test: yes\r\n\r\n") -> Exchange:
    return Exchange(parse_request(head), None, client)


def test_example_add_response_field(monkeypatch):
    (f,) = example_filters(monkeypatch, """\
        routes: [{cluster: video, filters: [{use: "filters:AddResponseField",
                                             config: {name: X-Region, value: eu-west-1}}]}]
        """)
    response = Response(200, [(b"x-region", b"old"), (b"Content-Type", b"text/plain")])
    assert f.on_response_head(exchange(), response) is None
    assert response.headers.items == [(b"Content-Type", b"text/plain"),
                                      (b"X-Region", b"eu-west-1")]


@pytest.mark.parametrize("conf, problem", [
    ("{name: X-Region}", "name and value are required strings"),
    ("{name: 'X Region', value: v}", "a field name is a non-empty token"),
])
def test_example_add_response_field_rejects_bad_config(monkeypatch, conf, problem):
    with pytest.raises(ConfigError, match=rf"^g.yaml: routes\[0\]\.filters\[0\]\.config: "
                                          rf"{problem}"):
        example_filters(monkeypatch, f'routes: [{{cluster: video, filters: [{{use: '
                                     f'"filters:AddResponseField", config: {conf}}}]}}]\n')


def test_example_deny_clients(monkeypatch):
    (f,) = example_filters(monkeypatch, """\
        routes: [{cluster: video, filters: [{use: "filters:DenyClients",
                  config: {deny: [127.0.0.1, 10.0.0.0/8, "2001:db8::/32"]}}]}]
        """)
    for client in ("127.0.0.1", "10.1.2.3", "2001:db8::5", "::ffff:10.9.9.9"):
        answer = run_request_filters(exchange(client), [f.on_request])
        assert isinstance(answer, Response) and answer.status == 403, client
        assert answer.body == b"403 Forbidden: client address denied\n"
    for client in ("127.0.0.2", "11.0.0.1", "2001:db9::1", "unknown", ""):
        assert run_request_filters(exchange(client), [f.on_request]) is None, client


@pytest.mark.parametrize("conf, problem", [
    ("{}", r"deny: a list of addresses or CIDR networks is required"),
    ("{deny: []}", r"deny: a list"),
    ("{deny: [10.0.0.0/8, 300.1.1.1]}",
     r"deny\[1\]: '300.1.1.1' does not appear to be an IPv4 or IPv6 network"),
])
def test_example_deny_clients_rejects_bad_config(monkeypatch, conf, problem):
    with pytest.raises(ConfigError, match=rf"^g.yaml: filters\[0\]\.config: {problem}"):
        example_filters(monkeypatch, f'filters: [{{use: "filters:DenyClients", '
                                     f'config: {conf}}}]\nroutes: [{{cluster: video}}]\n')


def test_the_example_config_checks(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    cfg = runtime.load(EXAMPLES / "filters.yaml")
    assert [r.name for r in cfg.routes] == ["api", None]


# --------------------------------------------------------------------------- request view


def test_request_header_and_query():
    ex = exchange()
    req = ex.request
    assert (req.method, req.path, req.query) == (b"GET", b"/v1/x", b"a=1")
    assert req.header(b"x-test") == req.header(b"X-TEST") == b"yes"
    assert req.header(b"x-missing") is None
    assert parse_request(b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n").query == b""
    assert parse_request(b"GET /p?a?b= HTTP/1.1\r\nHost: h\r\n\r\n").query == b"a?b="
    with pytest.raises(TypeError):
        req.header("x-test")
