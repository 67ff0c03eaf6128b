// The front end of galapagos_nao's live view (anywidget): draws the synced `state`.
// Every text goes in through textContent: event lines come from logs and failures.

const STYLE = `
.gn-live { font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px;
  color: var(--jp-ui-font-color1, #222); max-width: 760px; padding: 6px 2px; }
.gn-live .gn-head { font-size: 14px; margin-bottom: 4px; }
.gn-live .gn-state { font-weight: bold; padding: 0 6px; border-radius: 3px; color: white; }
.gn-live .gn-state-running, .gn-live .gn-state-starting { background: #2e7d32; }
.gn-live .gn-state-stopping, .gn-live .gn-state-stopped { background: #b8860b; }
.gn-live .gn-state-finished { background: #1f5fa8; }
.gn-live .gn-state-failed { background: #b00020; }
.gn-live .gn-state-no-run { background: #777; }
.gn-live .gn-bar { display: flex; align-items: center; gap: 8px; margin: 2px 0; }
.gn-live progress { width: 260px; height: 14px; }
.gn-live .gn-dim { color: var(--jp-ui-font-color2, #666); }
.gn-live .gn-metrics { margin: 4px 0; }
.gn-live .gn-metrics b { font-variant-numeric: tabular-nums; }
.gn-live table.gn-grid { border-collapse: collapse; margin: 6px 0; }
.gn-live table.gn-grid td, .gn-live table.gn-grid th { border: 1px solid #ccc;
  padding: 4px 8px; text-align: center; min-width: 64px; font-variant-numeric: tabular-nums; }
.gn-live table.gn-grid th { font-weight: normal; color: var(--jp-ui-font-color2, #666); }
.gn-live td.gn-empty { background: #eeeeee; color: #999; }
.gn-live .gn-mark { display: block; font-size: 11px; font-weight: bold; }
.gn-live .gn-events { font-family: var(--jp-code-font-family, monospace); font-size: 12px;
  max-height: 190px; overflow-y: auto; border-top: 1px solid #ddd; padding-top: 4px; }
.gn-live .gn-event-new { color: #2e7d32; } .gn-live .gn-event-replaced { color: #00838f; }
.gn-live .gn-event-failed { color: #b00020; } .gn-live .gn-event-steer { color: #8d6e00; }
`;

// Viridis at five stops: low fitness dark blue, high yellow (as gn.plot.archive).
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function colour(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const rgb = VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
  return { css: `rgb(${rgb.join(",")})`, light: 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 150 };
}

function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

const fixed = (value, digits = 4) => (value === null || value === undefined ? "-" : value.toFixed(digits));

function clock(seconds) {
  const s = Math.floor(seconds || 0);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(Math.floor(s / 60))}:${pad(s % 60)}`;
}

function header(state) {
  const head = node("div", "gn-head");
  head.append(node("strong", "", `${state.title} `));
  head.append(node("span", `gn-state gn-state-${state.state.replace(" ", "-")}`, state.state));
  if (state.evaluated !== undefined) {
    head.append(node("span", "gn-dim",
      ` · ${state.evaluated} evaluated · ${state.failed} failed · ${clock(state.elapsed)}`));
  }
  return head;
}

function progressBars(state) {
  const part = node("div");
  const total = state.generations;
  const bar = node("div", "gn-bar");
  const generations = node("progress");
  generations.max = total === null ? 1 : total;
  if (total === null) generations.removeAttribute("value"); // continual: no end to measure
  else generations.value = state.generation;
  const percent = total ? ` (${Math.round((100 * state.generation) / total)}%)` : "";
  const rate = state.generations_per_minute === null || state.generations_per_minute === undefined
    ? "" : ` · ${state.generations_per_minute.toFixed(1)} gen/min · ${state.networks_per_minute.toFixed(1)} networks/min`;
  bar.append(node("span", "", "generations"), generations,
    node("span", "gn-progress-text", `${state.generation}/${total === null ? "∞" : total}${percent}${rate}`));
  part.append(bar);
  if (!state.done && state.candidates_expected) {
    const row = node("div", "gn-bar");
    const candidates = node("progress");
    candidates.max = state.candidates_expected;
    candidates.value = Math.min(state.candidates, state.candidates_expected);
    row.append(node("span", "", "candidates"), candidates,
      node("span", "gn-dim", `${state.candidates}/${state.candidates_expected} in this generation`));
    part.append(row);
  }
  if (state.error) part.append(node("div", "gn-event-failed", `error: ${state.error}`));
  return part;
}

function metrics(state) {
  const line = node("div", "gn-metrics");
  const add = (label, value) => { line.append(`${label} `); line.append(node("b", "", value)); line.append("  ·  "); };
  add(`best ${state.metric}`, fixed(state.best));
  add(`mean ${state.metric}`, fixed(state.mean));
  add("best test_acc", fixed(state.best_test_acc));
  add("coverage", `${state.filled}/${state.cells_total}`);
  add("QD-score", fixed(state.qd_score, 3));
  line.append(`queued ${state.queued}`);
  line.append(node("div", "gn-dim", `${state.metric}: ${state.metric_label}`));
  return line;
}

function cellBox(cell, low, high) {
  const td = node("td");
  if (cell.fitness === null) {
    td.className = "gn-empty";
    td.textContent = "·";
  } else {
    const shade = colour(high > low ? (cell.fitness - low) / (high - low) : 0.5);
    td.style.background = shade.css;
    td.style.color = shade.light ? "black" : "white";
    td.textContent = cell.fitness.toFixed(4);
    td.title = `cell ${cell.cell.join(",")} · ${cell.layers} layers · test_acc ${fixed(cell.test_acc)} · ${cell.id}`;
  }
  const marks = (cell.pinned ? "pinned " : "") + (cell.favor !== 1 ? `favor ×${cell.favor}` : "");
  if (marks) td.append(node("span", "gn-mark", marks.trim()));
  return td;
}

function grid(state) {
  const table = node("table", "gn-grid");
  const filled = state.cells.filter((c) => c.fitness !== null).map((c) => c.fitness);
  const low = Math.min(...filled), high = Math.max(...filled);
  if (state.levels.length === 1) {
    const head = node("tr");
    head.append(node("th", "", `level of ${state.measures[0]}`));
    const row = node("tr");
    row.append(node("th", "", state.metric));
    for (const cell of state.cells) {
      head.append(node("th", "", String(cell.cell[0])));
      row.append(cellBox(cell, low, high));
    }
    table.append(head, row);
  } else if (state.levels.length === 2 && state.cells.length === state.levels[0] * state.levels[1]) {
    const head = node("tr");
    head.append(node("th", "", `${state.measures[0]} ↑ · ${state.measures[1]} →`));
    for (let c = 1; c <= state.levels[1]; c++) head.append(node("th", "", String(c)));
    table.append(head);
    for (let r = state.levels[0]; r >= 1; r--) { // highest level on top, as in the heatmap
      const row = node("tr");
      row.append(node("th", "", String(r)));
      for (const cell of state.cells.filter((c) => c.cell[0] === r)) row.append(cellBox(cell, low, high));
      table.append(row);
    }
  } else {
    for (const cell of state.cells) {
      const row = node("tr");
      row.append(node("th", "", cell.cell.join(",")), cellBox(cell, low, high));
      table.append(row);
    }
  }
  return table;
}

function events(state) {
  const box = node("div", "gn-events");
  if (!state.events.length) box.append(node("div", "gn-dim", "no events yet"));
  for (const event of state.events) {
    box.append(node("div", `gn-event-${event.kind}`, `${event.time}  ${event.text}`));
  }
  return box;
}

function render({ model, el }) {
  const style = node("style", "", STYLE);
  const root = node("div", "gn-live");
  el.append(style, root);
  const draw = () => {
    const state = model.get("state");
    if (!state || !state.title) return;
    const latest = events(state);
    root.replaceChildren(header(state), progressBars(state), metrics(state), grid(state), latest);
    latest.scrollTop = latest.scrollHeight; // the newest event in sight
    root.dataset.generation = String(state.generation);
    root.dataset.state = state.state;
  };
  model.on("change:state", draw);
  draw();
  return () => model.off("change:state", draw);
}

export default { render };
