"""`Link` pagination as spec §3.3.1 reads it: first `<`…`>`, resolved, `rel` not inspected."""

from __future__ import annotations

import pytest

from regwatch.errors import RegistryError
from regwatch.registry.client import next_page

PAGE = "https://r.io/v2/a/tags/list?n=1000"


@pytest.mark.parametrize(
    ("link", "url"),
    [
        (None, None),
        ("", None),
        ('</v2/a/tags/list?last=x>; rel="next"', "https://r.io/v2/a/tags/list?last=x"),
        ('</v2/a/tags/list?last=x>; rel="prev"', "https://r.io/v2/a/tags/list?last=x"),
        ("<?last=y>", "https://r.io/v2/a/tags/list?last=y"),
        ('<https://other.io/p>; rel="next"', "https://other.io/p"),
        ('<a>; rel="next", <b>; rel="last"', "https://r.io/v2/a/tags/a"),
    ],
)
def test_next_page(link: str | None, url: str | None) -> None:
    assert next_page(link, PAGE, "list tags") == url


@pytest.mark.parametrize("link", ["/v2/a; rel=next", "<unterminated", 'rel="next", <x>', "x<y>"])
def test_malformed_link_is_an_error(link: str) -> None:
    with pytest.raises(RegistryError, match="list tags: the registry sent an invalid Link header"):
        next_page(link, PAGE, "list tags")
