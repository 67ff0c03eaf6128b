from __future__ import annotations

from html.parser import HTMLParser

import pytest
from IPython.core.formatters import DisplayFormatter
from IPython.lib.pretty import pretty

from galapagos_nao import evolve
from galapagos_nao.archive.selection import Selection
from galapagos_nao.config.parameters import Parameters
from galapagos_nao.core.network import Network, count_parameters
from galapagos_nao.example import seed_layers
from galapagos_nao.store.library import Library
from galapagos_nao.ui import display

VOID_TAGS = {"br", "hr", "img", "input", "meta", "link", "wbr"}


class _Checker(HTMLParser):
    """Collects text and fails on any tag closed out of order or left open."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.rows = 0

    def handle_starttag(self, tag, attrs):
        if tag not in VOID_TAGS:
            self.stack.append(tag)
        self.rows += tag == "tr"

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_html(markup: str) -> _Checker:
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    assert checker.stack == [], f"unclosed tags: {checker.stack}"
    return checker


def trained(layers, val_acc=0.91, **fields) -> Network:
    net = Network(layers)
    return net.replace(
        weights=net.model().state_dict(), val_acc=val_acc, test_acc=val_acc - 0.01, **fields
    )


@pytest.fixture
def seed_net() -> Network:
    return trained(seed_layers(), n_params=count_parameters(Network(seed_layers()).model()))


def test_network_html_is_valid_and_lists_every_layer(seed_net):
    markup = seed_net._repr_html_()
    parsed = parse_html(markup)
    cells = [t for t in parsed.text]
    assert parsed.rows == 1 + 1 + len(seed_net.layers) + 1  # header, input, layers, head
    for type_name, params in seed_net.layers:
        assert type_name in cells
        if params:
            assert ", ".join(map(str, params)) in cells
    assert "(batch, 64)" in cells and "(batch, 10)" in cells and "(batch, 784)" in cells
    assert seed_net.id in "".join(cells)


def test_layer_rows_count_every_parameter_of_the_model(seed_net):
    rows = display.layer_rows(seed_net)
    assert [r.name for r in rows] == ["input", *(t for t, _ in seed_net.layers), "head"]
    assert sum(r.n_params for r in rows) == count_parameters(seed_net.model())
    assert rows[1].n_params == 784 * 64 + 64  # the first dense layer, by hand
    assert rows[-1].features == 10


def test_html_escapes_what_it_shows():
    net = trained([("dense", [3, "relu"])], mutations=("<b>replace</b> 0",))
    markup = net._repr_html_()
    parse_html(markup)
    assert "<b>" not in markup and "&lt;b&gt;" in markup


def test_pretty_shows_the_table_alone_and_the_seed_repr_inside_containers(seed_net):
    text = pretty(seed_net)
    lines = text.splitlines()
    assert lines[0] == repr(seed_net)
    for index, (type_name, _) in enumerate(seed_net.layers):
        assert any(line.split()[:2] == [str(index), type_name] for line in lines)
    assert pretty({2: seed_net}) == "{2: " + repr(seed_net) + "}"


def test_plain_repr_stays_short_and_seed_like(seed_net):
    text = repr(seed_net)
    assert "\n" not in text and text.startswith(f"Network(id={seed_net.id!r}, layers=[")
    assert text.endswith(f"test_acc={seed_net.test_acc:.4f})")


def test_ipython_formatter_offers_html_and_text(seed_net):
    data, _ = DisplayFormatter().format(seed_net)
    assert set(data) >= {"text/plain", "text/html"}
    assert data["text/plain"].startswith("Network(id=")
    parse_html(data["text/html"])


def test_selection_views_list_every_cell_and_the_queue():
    selection = Selection(parameters=Parameters())
    small, large = (
        trained([("dense", [4, "relu"])], 0.8),
        trained([("dense", [4, "relu"])] * 4, 0.9),
    )
    selection.select([small, large])
    selection.put_unevaluated(Network([("dropout", [0.2])]))
    text = pretty(selection)
    assert text.splitlines()[0] == repr(selection)
    assert "coverage 2/2 (100%)" in text and "QD-score 1.700" in text
    parsed = parse_html(selection._repr_html_())
    joined = "|".join(parsed.text)
    assert parsed.rows == 1 + 3
    for needle in ("|1|", "|2|", "queued -1", small.id[:8], large.id[:8], "0.9000"):
        assert needle in joined


def test_selection_views_show_tuple_cells():
    selection = Selection(parameters=Parameters())
    selection.parameters.put(selection, {"measures": ["layers", "params"]})
    selection.select([trained([("dense", [4, "relu"])], 0.8, n_params=3190)])
    assert "(2, 1)" in pretty(selection)  # one layer of at most one: the seed puts it in level 2
    assert "layers (2) × params (4)" in pretty(selection)
    assert "(2, 1)" in parse_html(selection._repr_html_()).text


def test_library_views_list_every_snapshot():
    library = Library()
    nets = [trained([("dense", [n, "relu"])], 0.5 + n / 100) for n in (2, 3)]
    for n in nets:
        library.put(n)
    parsed = parse_html(library._repr_html_())
    assert all(n.id in parsed.text for n in nets) and parsed.rows == 3
    assert all(n.id in pretty(library) for n in nets)
    assert pretty({"lib": library}) == "{'lib': " + repr(library) + "}"


def test_run_views_show_state_progress_and_latest_metrics(small_mnist):
    parameters = Parameters()
    parameters.put("orchestration", {"generation_size": 2})
    selection = Selection(parameters=parameters)
    run = evolve(seed_layers(), 1, small_mnist, selection=selection, seed=5)
    run.result(timeout=120)
    text = pretty(run)
    lines = text.splitlines()
    assert lines[0] == repr(run)
    assert lines[1].startswith("finished · 2 evaluated" if run.status().failed == 0 else "finished")
    assert "1/1 generations [" + "█" * display.BAR_WIDTH + "] 100%" in text
    assert display.stats_line(selection.stats()) in text
    markup = run._repr_html_()
    parsed = parse_html(markup)
    assert '<progress value="1" max="1">' in markup
    assert any("coverage" in t for t in parsed.text)


def test_progress_line_by_hand():
    assert display.progress_line(1, 4) == "1/4 generations [█████" + "·" * 15 + "] 25%"
    assert display.progress_line(7, None) == "7 generations (continual)"
