"""The ``tls`` keys of listeners and clusters (gwcore/config.py), their file paths, and the
forwarded client-certificate fields (gwcore/tls.py)."""

from __future__ import annotations

import pytest

from gwcore import config, tls

BASE = """
listeners: [{name: a, address: 127.0.0.1:8443, tls: %s}]
clusters: [{name: c, endpoints: [127.0.0.1:9001], tls: %s}]
routes: [{cluster: c}]
"""


def parse(listener_tls: str = "{certificates: [{cert: a.pem, key: a.key}]}",
          cluster_tls: str = "null", base_dir: str | None = None) -> config.Config:
    return config.parse(BASE % (listener_tls, cluster_tls), "gw.yaml", base_dir=base_dir)


def test_defaults() -> None:
    cfg = parse()
    t = cfg.listeners[0].tls
    assert t is not None and t.min_version == "TLSv1.2" and t.alpn == ["http/1.1"]
    assert t.session_tickets and t.ticket_key_rotation is None and t.client_auth is None
    assert cfg.listeners[0].timeouts.tls_handshake == 10.0
    assert cfg.clusters[0].tls is None


def test_paths_are_relative_to_the_config_file() -> None:
    cfg = parse("{certificates: [{cert: a.pem, key: /k/a.key}], client_auth: {ca: ca.pem}}",
                "{ca: up.pem, client_cert: {cert: c.pem, key: c.key}}", base_dir="/etc/gw")
    t = cfg.listeners[0].tls
    assert (t.certificates[0].cert, t.certificates[0].key) == ("/etc/gw/a.pem", "/k/a.key")
    assert t.client_auth.ca == "/etc/gw/ca.pem" and t.client_auth.required
    up = cfg.clusters[0].tls
    assert (up.ca, up.client_cert.cert, up.client_cert.key) == (
        "/etc/gw/up.pem", "/etc/gw/c.pem", "/etc/gw/c.key")
    assert parse(cluster_tls="{verify: true}", base_dir="/etc/gw").clusters[0].tls.ca == "system"


@pytest.mark.parametrize(("listener_tls", "cluster_tls", "message"), [
    ("{certificates: []}", "null", "listeners[0].tls.certificates: at least one"),
    ("{certificates: [{cert: a}]}", "null", "listeners[0].tls.certificates[0].key: missing"),
    ("{certificates: [{cert: a, key: b}], min_version: TLSv1.1}", "null",
     "listeners[0].tls.min_version"),
    ("{certificates: [{cert: a, key: b}], alpn: [h2]}", "null",
     "listeners[0].tls.alpn[0]: 'h2' is not supported"),
    ("{certificates: [{cert: a, key: b, server_names: ['a b']}]}", "null",
     "listeners[0].tls.certificates[0].server_names[0]: 'a b' is not a host name"),
    ("{certificates: [{cert: a, key: b}], ticket_key_rotation: 1s}", "null",
     "listeners[0].tls.ticket_key_rotation: must be at least 5s"),
    ("{certificates: [{cert: a, key: b}], max_handshakes: 0}", "null",
     "listeners[0].tls.max_handshakes: must be between 1"),
    ("{certificates: [{cert: a, key: b}], client_auth: {ca: x, subject_field: 'a b'}}",
     "null", "listeners[0].tls.client_auth.subject_field"),
    ("{certificates: [{cert: a, key: b}], ocsp: x}", "null", "listeners[0].tls.ocsp: unknown"),
    ("null", "{server_name: 'bad name'}", "clusters[0].tls.server_name"),
    ("null", "{verify: maybe}", "clusters[0].tls.verify"),
])
def test_invalid(listener_tls: str, cluster_tls: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as e:
        parse(listener_tls, cluster_tls)
    assert str(e.value).startswith(f"gw.yaml: {message}"), str(e.value)


def test_redirect_http_only_on_a_plain_listener() -> None:
    with pytest.raises(config.ConfigError,
                       match=r"listeners\[0\]\.redirect_http: only on a plain listener"):
        config.parse("listeners: [{name: a, address: 127.0.0.1:1, redirect_http: true, "
                     "tls: {certificates: [{cert: a, key: b}]}}]\nclusters: [{name: c, "
                     "endpoints: [127.0.0.1:2]}]\nroutes: [{cluster: c}]\n", "gw.yaml")


def test_handshake_timeout_positive() -> None:
    with pytest.raises(config.ConfigError, match="timeouts.tls_handshake: must be more"):
        config.parse("listeners: [{name: a, address: 127.0.0.1:1, "
                     "timeouts: {tls_handshake: 0s}}]\nclusters: [{name: c, endpoints: "
                     "[127.0.0.1:2]}]\nroutes: [{cluster: c}]\n", "gw.yaml")


def test_client_cert_fields_are_printable_ascii() -> None:
    peer = {"subject": ((("countryName", "DE"),), (("commonName", "a,b\r\nX-Evil: 1"),),
                        (("organizationName", "Zürich"),)),
            "subjectAltName": (("DNS", "a.test"), ("email", "a@b.test"),
                               ("IP Address", "192.0.2.1"))}
    subject, san = tls.client_cert_fields(peer)
    assert subject == b"C=DE,CN=a\\,b\\0D\\0AX-Evil: 1,O=Z\\C3\\BCrich"
    assert san == b"DNS:a.test, email:a@b.test, IP:192.0.2.1"
    assert tls.client_cert_fields({}) is None and tls.client_cert_fields(None) is None


def test_sni_selection_order() -> None:
    import ssl

    a, b, c = (ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) for _ in range(3))
    lc = tls.ListenerContexts(a, {"x.test": b}, {".x.test": c})
    assert lc.select("x.test") is b and lc.select("X.TEST.") is b
    assert lc.select("www.x.test") is c and lc.select("a.www.x.test") is a
    assert lc.select(None) is a and lc.select("y.test") is a


def test_ocsp_staple_paths_and_one_place_for_the_default() -> None:
    cfg = parse("{certificates: [{cert: a.pem, key: a.key, ocsp_staple: a.ocsp.der}, "
                "{cert: b.pem, key: b.key}]}", base_dir="/etc/gw")
    t = cfg.listeners[0].tls
    assert t.certificates[0].ocsp_staple == "/etc/gw/a.ocsp.der" and t.ocsp_staple is None
    assert t.certificates[1].ocsp_staple is None
    cfg = parse("{certificates: [{cert: a.pem, key: a.key}], ocsp_staple: /s/a.der}",
                base_dir="/etc/gw")
    assert cfg.listeners[0].tls.ocsp_staple == "/s/a.der"
    with pytest.raises(config.ConfigError, match=r"listeners\[0\]\.tls.*ocsp_staple: also"):
        parse("{certificates: [{cert: a, key: b, ocsp_staple: x}], ocsp_staple: y}")
