"""Config parsing: typed values, and errors that name the file, the key path and the problem."""

import subprocess
import sys

import pytest

from gwcore.config import ConfigError, load, parse

BASE = """\
listeners:
  - name: public
    address: 127.0.0.1:8080
    limits: {max_head_bytes: 16KiB, max_headers: 50, max_body_bytes: 10MiB}
    timeouts: {header: 250ms, idle: 5m}
clusters:
  - name: video
    endpoints: ["127.0.0.1:9001", "[::1]:9002"]
    timeouts: {connect: 1s, response: 15s}
routes:
  - match: {host: "*.example.com", path_prefix: /v1/, methods: [GET, POST]}
    cluster: video
"""


def test_values_are_typed():
    cfg = parse(BASE, "gateway.yaml")
    lst = cfg.listeners[0]
    assert (lst.host, lst.port) == ("127.0.0.1", 8080)
    assert lst.limits.max_head_bytes == 16 * 1024
    assert lst.limits.max_body_bytes == 10 * 1024 * 1024
    assert lst.timeouts.header == pytest.approx(0.25)
    assert lst.timeouts.idle == 300.0
    assert [(e.host, e.port) for e in cfg.clusters[0].endpoints] == [
        ("127.0.0.1", 9001), ("::1", 9002)]
    assert cfg.routes[0].match.methods == ["GET", "POST"]
    assert cfg.workers == "auto"


@pytest.mark.parametrize("change, message", [
    (("cluster: video", "cluster: vidoe"), "gateway.yaml: routes[0].cluster: unknown cluster 'vidoe'"),
    (("idle: 5m", "idle: 5 parsecs"), "gateway.yaml: listeners[0].timeouts.idle: expected a duration"),
    (("max_headers: 50", "max_headers: 0"), "gateway.yaml: listeners[0].limits.max_headers: must be"),
    (("max_headers: 50", "max_headers: many"), "gateway.yaml: listeners[0].limits.max_headers: Expected `int`"),
    (("16KiB", "16 parsecs"), "gateway.yaml: listeners[0].limits.max_head_bytes: expected a size"),
    (("timeouts: {connect", "timeout: {connect"), "gateway.yaml: clusters[0].timeout: unknown key"),
    (('"[::1]:9002"', '"nohost"'), "gateway.yaml: clusters[0].endpoints[1]: expected host:port"),
    (("127.0.0.1:8080", "example.com:8080"), "gateway.yaml: listeners[0].address: host must be an IP"),
    (("path_prefix: /v1/", "path_prefix: v1/"), "gateway.yaml: routes[0].match.path: paths start with '/'"),
    (("methods: [GET, POST]", "methods: [GET, 'P O']"), "gateway.yaml: routes[0].match.methods:"),
])
def test_errors_name_file_key_path_and_problem(change, message):
    with pytest.raises(ConfigError) as e:
        parse(BASE.replace(*change), "gateway.yaml")
    assert str(e.value).startswith(message), str(e.value)


def test_missing_and_unknown_top_level_keys():
    with pytest.raises(ConfigError, match=r"^g.yaml: routes: missing required key$"):
        parse(BASE.split("routes:")[0], "g.yaml")
    with pytest.raises(ConfigError, match=r"^g.yaml: colour: unknown key$"):
        parse(BASE + "colour: blue\n", "g.yaml")


def test_duplicate_names_and_yaml_syntax():
    dup = BASE.replace("routes:", "  - name: video\n    endpoints: ['127.0.0.1:1']\nroutes:")
    with pytest.raises(ConfigError, match=r"clusters\[1\]\.name: duplicate name 'video'"):
        parse(dup, "g.yaml")
    with pytest.raises(ConfigError, match=r"^g.yaml: line \d+: "):
        parse("listeners: [", "g.yaml")


def test_load_names_the_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: No such file"):
        load(missing)
    good = tmp_path / "gateway.yaml"
    good.write_text(BASE)
    assert load(good).clusters[0].name == "video"


MAGLEV = "balancer: {{policy: maglev, table_size: {}}}\n    timeouts: {{connect"


def test_on_is_a_key_not_a_boolean_and_bad_values_are_caught():
    cfg = parse(BASE.replace("timeouts: {connect: 1s, response: 15s}",
                             "retries: {attempts: 3, on: [connect_failure, reset]}"), "g.yaml")
    assert cfg.clusters[0].retries.on == ["connect_failure", "reset"]
    for change, message in [
        (("connect: 1s", "connect: 0s"), "clusters[0].timeouts.connect: must be more than 0s"),
        (("timeouts: {connect", MAGLEV.format(65536)),
         "clusters[0].balancer.table_size: must be a prime"),
        (("timeouts: {connect", MAGLEV.format(101)),
         "clusters[0].balancer: table_size 101 is under 100"),
    ]:
        with pytest.raises(ConfigError) as e:
            parse(BASE.replace(*change), "g.yaml")
        assert str(e.value).startswith(f"g.yaml: {message}"), str(e.value)


LISTENERS = """\
listeners:
  - {{name: a, address: "{}"}}
  - {{name: b, address: "{}"}}
clusters: [{{name: c, endpoints: ["127.0.0.1:9001"]}}]
routes: [{{cluster: c}}]
"""


@pytest.mark.parametrize("first, second, message", [
    ("127.0.0.1:8080", "127.0.0.1:8080",
     "listeners[1].address: 127.0.0.1:8080 is already used by listeners[0] 'a'"),
    ("[::1]:8080", "[0:0::1]:8080",
     "listeners[1].address: [0:0::1]:8080 is already used by listeners[0] 'a' (as [::1]:8080)"),
    ("0.0.0.0:8080", "127.0.0.1:8080",
     ("listeners[1].address: 127.0.0.1:8080 overlaps listeners[0] 'a' on 0.0.0.0:8080 "
      "(a wildcard address takes port 8080 on every IPv4 address)")),
    ("10.1.2.3:443", "0.0.0.0:443",
     "listeners[1].address: 0.0.0.0:443 overlaps listeners[0] 'a' on 10.1.2.3:443"),
    ("[::]:8443", "[::1]:8443",
     ("listeners[1].address: [::1]:8443 overlaps listeners[0] 'a' on [::]:8443 "
      "(a wildcard address takes port 8443 on every IPv6 address)")),
])
def test_listeners_that_serve_could_not_both_bind(first, second, message):
    with pytest.raises(ConfigError) as e:
        parse(LISTENERS.format(first, second), "gateway.yaml")
    assert str(e.value).startswith(f"gateway.yaml: {message}"), str(e.value)


@pytest.mark.parametrize("first, second", [
    ("0.0.0.0:8080", "[::]:8080"),            # IPv6 sockets are IPv6-only: no overlap
    ("127.0.0.1:8080", "127.0.0.2:8080"),
    ("127.0.0.1:8080", "[::1]:8080"),
    ("0.0.0.0:8080", "127.0.0.1:8081"),
])
def test_listeners_that_can_share_a_port_or_host(first, second):
    cfg = parse(LISTENERS.format(first, second), "gateway.yaml")
    assert [lst.address for lst in cfg.listeners] == [first, second]


def test_a_repeated_yaml_key_is_an_error_with_its_path_and_lines():
    dup = BASE.replace("max_body_bytes: 10MiB}", "max_body_bytes: 10MiB}\n    limits: {}")
    with pytest.raises(ConfigError) as e:
        parse(dup, "gateway.yaml")
    assert str(e.value) == ("gateway.yaml: listeners[0].limits: duplicate key on line 5 "
                            "(first on line 4)")
    nested = BASE.replace("methods: [GET, POST]", "methods: [GET], path_prefix: /v2/")
    with pytest.raises(ConfigError) as e:
        parse(nested, "g.yaml")
    assert str(e.value) == "g.yaml: routes[0].match.path_prefix: duplicate key on line 11 " \
                           "(first on line 11)"
    with pytest.raises(ConfigError, match=r"^g.yaml: routes: duplicate key on line 13 "
                                          r"\(first on line 10\)$"):
        parse(BASE + "routes: []\n", "g.yaml")


def test_a_yaml_merge_key_is_not_a_repeat():
    text = BASE.replace("    timeouts: {connect: 1s, response: 15s}\n",
                        "    timeouts: &t {connect: 1s, response: 15s}\n"
                        "  - name: other\n    endpoints: ['127.0.0.1:1']\n"
                        "    timeouts: {<<: *t, connect: 2s}\n")
    timeouts = parse(text, "g.yaml").clusters[1].timeouts
    assert (timeouts.connect, timeouts.response) == (2.0, 15.0)


@pytest.mark.parametrize("text, size", [
    ("512", 512), ("512B", 512), ("16KiB", 16 << 10), ("10MiB", 10 << 20), ("1GiB", 1 << 30),
    ("16kB", 16_000), ("16KB", 16_000), ("10MB", 10_000_000), ("1GB", 1_000_000_000),
    ("10 MiB", 10 << 20),
])
def test_size_units_binary_and_si(text, size):
    cfg = parse(BASE.replace("max_body_bytes: 10MiB", f"max_body_bytes: {text}"), "g.yaml")
    assert cfg.listeners[0].limits.max_body_bytes == size


@pytest.mark.parametrize("text, got", [
    ("10mb", "'10mb' (unknown unit 'mb')"),
    ("10M", "'10M' (unknown unit 'M')"),
    ("1TB", "'1TB' (unknown unit 'TB')"),
    ("1.5MiB", "'1.5MiB'"),
    ("-1", "-1"),
])
def test_size_errors_name_the_accepted_units(text, got):
    with pytest.raises(ConfigError) as e:
        parse(BASE.replace("max_body_bytes: 10MiB", f"max_body_bytes: {text}"), "g.yaml")
    assert str(e.value) == (
        "g.yaml: listeners[0].limits.max_body_bytes: expected a size: a whole number of bytes, "
        "optionally with a unit: B, KiB, MiB, GiB (×1024) or kB/KB, MB, GB (×1000), e.g. 16KiB; "
        f"got {got}")


JWT = BASE + """\
jwt_providers:
  p: {algorithms: [HS256], jwks: {file: keys/jwks.json}}
"""
JWKS = '{"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}'


def test_parse_and_load_agree_and_resolve_paths_against_the_config_directory(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(JWT)
    loaded = load(path)
    assert loaded == parse(JWT, str(path), base_dir=tmp_path)
    assert loaded.jwt_providers["p"].jwks.file == str(tmp_path / "keys/jwks.json")
    assert parse(JWT, "g.yaml").jwt_providers["p"].jwks.file == "keys/jwks.json"    # as written
    absolute = JWT.replace("keys/jwks.json", str(tmp_path / "elsewhere.json"))
    assert (parse(absolute, "g.yaml", base_dir="/nowhere").jwt_providers["p"].jwks.file
            == str(tmp_path / "elsewhere.json"))


def test_the_runtime_check_reads_key_files_and_names_the_key(tmp_path):
    from gwcore import runtime

    path = tmp_path / "gateway.yaml"
    path.write_text(JWT)
    cfg = load(path)                            # the parser reads no key file
    with pytest.raises(ConfigError) as e:
        runtime.check(cfg, str(path))
    assert str(e.value) == (f"{path}: jwt_providers.p.jwks.file: [Errno 2] No such file or "
                            f"directory: '{tmp_path / 'keys/jwks.json'}'")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys/jwks.json").write_text('{"keys": 5}')
    with pytest.raises(ConfigError, match=r"^.*gateway.yaml: jwt_providers\.p\.jwks\.file: a JWK Set"):
        runtime.load(path)
    (tmp_path / "keys/jwks.json").write_text(JWKS)
    assert runtime.load(path) == cfg
    assert runtime.key_set(cfg.jwt_providers["p"].jwks).kids() == {"k1"}
    runtime.check(parse(BASE, "g.yaml"))        # no provider: nothing to read


def test_config_imports_no_compiled_or_runtime_module():
    probe = ("import sys, gwcore.config\n"
             "print('\\n'.join(f'{n} {getattr(m, \"__file__\", None)}' for n, m in "
             "sys.modules.items() if n.startswith(('gwcore', 'uvloop'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split("\n")
    modules = dict(line.split(" ", 1) for line in out if line)
    assert set(modules) == {"gwcore", "gwcore.config"}, modules
    assert not any(f.endswith(".so") for f in modules.values()), modules


def test_access_log_path_is_relative_to_the_config_and_checked_without_creating_it(tmp_path):
    from gwcore import runtime

    text = BASE + "access_log: {path: logs/access.log, format: combined, sample_2xx: 0.5}\n"
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    cfg = load(path)
    assert cfg.access_log.path == str(tmp_path / "logs/access.log")
    assert (cfg.access_log.format, cfg.access_log.sample_2xx) == ("combined", 0.5)
    assert parse(BASE + "access_log: {path: '-'}\n", "g.yaml", base_dir=tmp_path
                 ).access_log.path == "-"
    with pytest.raises(ConfigError, match=r"access_log\.path: directory .*logs does not exist"):
        runtime.check(cfg, str(path))
    (tmp_path / "logs").mkdir()
    runtime.check(cfg, str(path))
    assert not (tmp_path / "logs/access.log").exists()
    with pytest.raises(ConfigError, match=r"^g\.yaml: access_log\.path: give a file"):
        parse(BASE + "access_log: {path: ''}\n", "g.yaml")
    with pytest.raises(ConfigError, match=r"^g\.yaml: access_log\.sample_2xx: must be between"):
        parse(BASE + "access_log: {path: x.log, sample_2xx: 2}\n", "g.yaml")
