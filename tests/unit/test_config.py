"""Decoding Concourse requests: Go's strict types, raw numeric tags, tags and digests checked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from regwatch.config import parse_check_request, parse_in_request, parse_out_request
from regwatch.errors import ConfigError

DIGEST = "sha256:" + "ab" * 32


def check_with(source: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"source": {"repository": "r", **source}, **extra})


def refused(text: str | bytes, parse: Any = parse_check_request) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("invalid payload: ")
    return message


@pytest.mark.parametrize(
    "tag",
    [
        "foo:bar",
        "feature?x",
        "../../../victim/other/manifests/pwned",
        "a/b",
        "x#frag",
        "a%2fb",
        "with space",
        "-x",
        ".x",
        "a" * 129,
        "tab\t",
        "line\nbreak",
        "nul\x00",
        "ünï",
        "a+b",
        "a@b",
    ],
)
def test_an_invalid_source_tag_is_refused(tag: str) -> None:
    assert "source.tag: invalid tag" in refused(check_with({"tag": tag}))


@pytest.mark.parametrize("tag", ["a", "_x", "1.2.3", "A-b_c.d", "a" * 128, "latest", "0"])
def test_valid_tags_pass(tag: str) -> None:
    assert parse_check_request(check_with({"tag": tag})).source.tag == tag


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        ("1e5", "1e5"),
        ("1E5", "1E5"),
        ("42.10", "42.10"),
        ("1.0E-7", "1.0E-7"),
        ("0.5e-3", "0.5e-3"),
        ("42", "42"),
        ("0", "0"),
        ("12345678901234567890123", "12345678901234567890123"),
        ("true", "true"),
        ("false", "false"),
        ('"1e5"', "1e5"),
    ],
)
def test_a_numeric_tag_keeps_its_raw_json_text(raw: str, tag: str) -> None:
    text = '{"source": {"repository": "r", "tag": ' + raw + "}}"
    assert parse_check_request(text).source.tag == tag


@pytest.mark.parametrize("raw", ["-0", "-1", "1e+5", "1E+5", "-1.5e-3", "9" * 5000])
def test_a_numeric_tag_that_is_no_tag_is_refused_with_its_text(raw: str) -> None:
    text = '{"source": {"repository": "r", "tag": ' + raw + "}}"
    message = refused(text)
    assert "invalid tag '" + raw[:10] in message
    assert len(message) < 400


@pytest.mark.parametrize(
    ("version", "fragment"),
    [
        ({"tag": "a/b", "digest": DIGEST}, "version.tag: invalid tag 'a/b'"),
        ({"tag": "x:y", "digest": ""}, "version.tag: invalid tag"),
        ({"tag": "v1", "digest": "md5:abc"}, "version.digest: invalid digest 'md5:abc'"),
        ({"tag": "v1", "digest": "sha256:abc"}, "version.digest: invalid digest"),
        ({"tag": "v1", "digest": "sha256:" + "AB" * 32}, "version.digest: invalid digest"),
        ({"tag": "v1", "digest": "sha256:" + "a" * 63 + "/"}, "version.digest: invalid digest"),
        ({"tag": "v1", "digest": "sha256:" + "a" * 5000}, "characters)"),
        ({"tag": "v1", "digest": "v1"}, "version.digest: invalid digest"),
    ],
)
def test_a_cursor_is_checked_before_any_request(version: dict[str, str], fragment: str) -> None:
    assert fragment in refused(check_with({}, version=version))
    request = json.dumps({"source": {"repository": "r"}, "version": version})
    assert fragment in refused(request, parse_in_request)


@pytest.mark.parametrize(
    "version", [None, {}, {"tag": "", "digest": ""}, {"tag": "1.0.0", "digest": DIGEST}]
)
def test_check_cursors_that_are_fine(version: dict[str, str] | None) -> None:
    parse_check_request(check_with({}, version=version))


@pytest.mark.parametrize("version", [{}, {"tag": "v1"}, {"digest": ""}, {"digest": None}])
def test_in_needs_a_digest(version: dict[str, str]) -> None:
    request = json.dumps({"source": {"repository": "r"}, "version": version})
    assert "version.digest: invalid digest ''" in refused(request, parse_in_request)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        (
            "insecure",
            "yes",
            "cannot unmarshal string into Go struct field source.insecure of type bool",
        ),
        ("insecure", "true", "string into Go struct field source.insecure of type bool"),
        ("insecure", "false", "string into Go struct field source.insecure of type bool"),
        ("insecure", 1, "number into Go struct field source.insecure of type bool"),
        ("insecure", 0, "number into Go struct field source.insecure of type bool"),
        ("insecure", [], "array into Go struct field source.insecure of type bool"),
        ("debug", "on", "source.debug of type bool"),
        ("pre_releases", "1", "source.pre_releases of type bool"),
        ("created_at_sort", {}, "object into Go struct field source.created_at_sort of type bool"),
        ("azure_acr", "y", "source.azure_acr of type bool"),
        ("concurrency", "8", "string into Go struct field source.concurrency of type int"),
        ("concurrency", 8.0, "number 8.0 into Go struct field source.concurrency of type int"),
        ("concurrency", 8.5, "number 8.5 into Go struct field source.concurrency of type int"),
        ("concurrency", True, "bool into Go struct field source.concurrency of type int"),
        ("concurrency", 10**30, "number 1" + "0" * 30 + " into Go struct field source.concurrency"),
        ("username", 5, "number into Go struct field source.username of type string"),
        ("password", True, "bool into Go struct field source.password of type string"),
        ("tag_regex", ["a"], "array into Go struct field source.tag_regex of type string"),
        ("tag", ["a"], "array into Go struct field source.tag of type string"),
        ("tag", {"a": 1}, "object into Go struct field source.tag of type string"),
        ("ca_certs", "pem", "string into Go struct field source.ca_certs of type []string"),
        ("ca_certs", ["ok", 1], "number into Go struct field source.ca_certs[1] of type string"),
        ("pre_release_prefixes", [True], "source.pre_release_prefixes[0] of type string"),
        ("platform", "linux", "string into Go struct field source.platform of type object"),
        ("platform", {"os": 1}, "number into Go struct field source.platform.os of type string"),
        ("registry_mirror", ["m"], "array into Go struct field source.registry_mirror of type"),
    ],
)
def test_types_are_strict_as_go_decodes_them(field: str, value: Any, fragment: str) -> None:
    message = refused(check_with({field: value}))
    assert message.startswith("invalid payload: json: cannot unmarshal"), message
    assert fragment in message


@pytest.mark.parametrize(
    ("request_text", "parse", "fragment"),
    [
        (
            '{"source": {"repository": "r"}, "params": {"image": "i", "bump_aliases": "true"}}',
            parse_out_request,
            "params.bump_aliases of type bool",
        ),
        (
            '{"source": {"repository": "r"}, "params": {"image": 5}}',
            parse_out_request,
            "number into Go struct field params.image of type string",
        ),
        (
            '{"source": {"repository": "r"}, "params": {"skip_download": "yes"}, '
            f'"version": {{"digest": "{DIGEST}"}}}}',
            parse_in_request,
            "params.skip_download of type bool",
        ),
        ('{"source": "r"}', parse_check_request, "string into Go struct field source of type"),
        ("[1]", parse_check_request, "cannot unmarshal array into Go value of type object"),
        ('"x"', parse_check_request, "cannot unmarshal string into Go value of type object"),
    ],
)
def test_every_model_is_strict(request_text: str, parse: Any, fragment: str) -> None:
    assert fragment in refused(request_text, parse)


def test_null_means_unset_as_in_go() -> None:
    text = json.dumps(
        {
            "source": {
                "repository": "r",
                "tag": None,
                "insecure": None,
                "concurrency": None,
                "ca_certs": None,
                "platform": None,
            },
            "version": None,
        }
    )
    parsed = parse_check_request(text)
    assert parsed.source.tag is None
    assert parsed.source.insecure is False
    assert parsed.source.concurrency == 8
    assert parsed.source.ca_certs == ()
    assert parsed.version is None


def test_lists_and_real_booleans_still_decode() -> None:
    parsed = parse_check_request(
        check_with(
            {"insecure": True, "ca_certs": ["a", "b"], "concurrency": 3, "platform": {"os": "l"}}
        )
    )
    assert parsed.source.insecure is True
    assert parsed.source.ca_certs == ("a", "b")
    assert parsed.source.concurrency == 3


@pytest.mark.parametrize(
    ("request_text", "fragment"),
    [
        ('{"source": {"repository": "r", "concurrency": ' + "9" * 5000 + "}}", "cannot unmarshal"),
        ('{"source": {"repository": "r", "x": ' + "9" * 5000 + "}}", 'unknown field "x"'),
        ('{"source": {"repository": "r", "insecure": ' + "9" * 5000 + ".5}}", "of type bool"),
        ("[" * 100_000, "malformed JSON: nested too deeply"),
        ('{"source": ' * 50_000, "malformed JSON: nested too deeply"),
        ('{"source": {"repository": "r", "tag": ' + "[" * 900 + "]" * 900 + "}}", "source.tag"),
        ('{"source": {"repository": "r", "tag": NaN}}', "NaN is not a JSON value"),
        ('{"source": {"repository": "r", "concurrency": -Infinity}}', "-Infinity is not"),
        ("{not json", "malformed JSON: expecting property name"),
    ],
)
def test_hostile_json_is_one_clear_line(request_text: str, fragment: str) -> None:
    message = refused(request_text)
    assert fragment in message
    assert "UTF-8" not in message
    assert len(message) < 400


def test_bytes_that_are_not_utf8_say_so() -> None:
    assert "not UTF-8" in refused(b'{"source": {"repository": "\xff"}}')


@pytest.mark.parametrize("parse", [parse_check_request, parse_in_request, parse_out_request])
@pytest.mark.parametrize("source", [{}, {"repository": ""}, {"repository": None}])
def test_every_command_names_a_missing_repository(parse: Any, source: dict[str, Any]) -> None:
    message = refused(json.dumps({"source": source}), parse)
    assert "source.repository is required" in message


@pytest.mark.parametrize("params", [{}, {"image": ""}, {"image": None}, {"version": "1.0.0"}])
def test_out_names_a_missing_image(params: dict[str, Any]) -> None:
    message = refused(
        json.dumps({"source": {"repository": "r"}, "params": params}), parse_out_request
    )
    assert "params.image is required" in message
    assert "None" not in message


def test_messages_keep_the_case_of_values() -> None:
    assert "invalid tag 'Foo:Bar'" in refused(check_with({"tag": "Foo:Bar"}))


@pytest.mark.parametrize(
    ("max_age", "reason"),
    [
        ("2x", "'2x' is not a duration: write a number and a unit"),
        ("120", "'120' is not a duration"),
        ("0s", "'0s' is not a duration longer than zero"),
    ],
)
def test_a_bad_max_age_is_one_line_naming_the_field(max_age: str, reason: str) -> None:
    message = refused(check_with({"max_age": max_age, "store": "sqlite://"}))
    assert message.startswith(f"invalid payload: source.max_age: {reason}")


def test_a_max_age_that_is_a_number_is_refused_as_go_would() -> None:
    message = refused(check_with({"max_age": 120, "store": "sqlite://"}))
    assert message == (
        "invalid payload: json: cannot unmarshal number into Go struct field "
        "source.max_age of type string"
    )


@pytest.mark.parametrize("parse", [parse_check_request, parse_in_request, parse_out_request])
def test_max_age_without_a_store_is_refused_by_every_step(parse: Any) -> None:
    """Concourse hands one `source` to check, get and put: a wrong one fails them all alike."""
    request: dict[str, Any] = {"source": {"repository": "r", "max_age": "2m"}}
    if parse is not parse_out_request:
        request["version"] = {"tag": "t", "digest": DIGEST}
    else:
        request["params"] = {"image": "i"}
    message = refused(json.dumps(request), parse)
    assert message == (
        "invalid payload: source.max_age needs source.store: a check is answered from the"
        " store's log (the fleet's database); set store, or remove max_age"
    )


@pytest.mark.parametrize("written", ["2m", "30s", "1h30m", "Max_Age"])
def test_a_max_age_with_a_store_decodes(written: str) -> None:
    key, value = ("Max_Age", "2m") if written == "Max_Age" else ("max_age", written)
    parsed = parse_check_request(check_with({key: value, "store": "sqlite://"}))
    assert parsed.source.max_age == value
