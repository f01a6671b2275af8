// The KV cache inspector: reads the engine's snapshots from GET /v1/kv/events (server-sent events, read through
// fetch so an API key can ride in a header) and draws them. Plain JavaScript, no build step, nothing from a CDN.
'use strict';

const MAX_CELLS = 4096;        // past this many blocks, one cell stands for several
const MAX_TREE_NODES = 300;    // the prefix tree draws at most this many runs
const HISTORY = 120;           // samples kept for the charts (one a second: two minutes)
const SVG = 'http://www.w3.org/2000/svg';

const $ = id => document.getElementById(id);
let latest = null;             // the last snapshot received
let cells = [];                // the map's cell elements
let cellStates = '';           // what each cell shows now
let blocksPerCell = 1;
let hovered = null;            // the sequence row under the pointer, by its label
const history = { tps: [], queue: [], preempt: [], hitRate: [] };
let lastSample = null;         // {time, generated, preemptions} at the previous chart sample

// ---- connection ---------------------------------------------------------------------------------------------

function apiKey() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('key');
  if (fromHash) sessionStorage.setItem('kvsharp-key', fromHash);
  return sessionStorage.getItem('kvsharp-key');
}

function setConnection(state, text) {
  const el = $('connection');
  el.dataset.state = state;
  el.textContent = text;
}

// A hidden tab reads nothing and draws nothing: the stream closes, so the server sends it nothing either, and a
// fresh one (a whole snapshot first) opens when the tab shows again.
let stream = null;             // the open stream's AbortController
const hidden = () => document.visibilityState === 'hidden';

async function connect() {
  if (stream || hidden()) return;
  const controller = stream = new AbortController();
  const key = apiKey();
  const headers = { Accept: 'text/event-stream' };
  if (key) headers.Authorization = 'Bearer ' + key;
  try {
    // delta=true: the first event is a whole snapshot, the rest only the parts that changed since the one before.
    const response = await fetch('/v1/kv/events?delta=true', { headers, cache: 'no-store', signal: controller.signal });
    if (response.status === 401) {
      stream = null;
      setConnection('disconnected', 'API key needed');
      $('key-form').hidden = false;
      return;
    }
    if (!response.ok) throw new Error('HTTP ' + response.status);
    setConnection('live', 'live');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const lines = buffer.slice(0, end).split('\n');
        buffer = buffer.slice(end + 2);
        const type = lines.find(l => l.startsWith('event: '));
        const data = lines.filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('\n');
        if (data) receive(JSON.parse(data), type ? type.slice(7) : 'message');
      }
    }
    throw new Error('the stream ended');
  } catch (e) {
    if (stream !== controller) return; // closed on purpose (hidden tab, a fresh start)
    stream = null;
    setConnection('disconnected', 'disconnected, retrying');
    setTimeout(connect, 1000);
  }
}

function disconnect() {
  const controller = stream;
  stream = null;
  if (controller) controller.abort();
}

document.addEventListener('visibilitychange', () => {
  if (hidden()) {
    disconnect();
    if (frame) { cancelAnimationFrame(frame); frame = 0; }
    setConnection('paused', 'paused while hidden');
    lastSample = null; // the charts resume from the next sample, not averaged over the pause
  } else connect();
});

$('key-form').addEventListener('submit', e => {
  e.preventDefault();
  sessionStorage.setItem('kvsharp-key', $('key-input').value);
  $('key-form').hidden = true;
  connect();
});

// ---- receiving ----------------------------------------------------------------------------------------------

// What changed since the last frame was drawn; a frame draws only these parts, at most one frame per event.
const PARTS = ['model', 'blocks', 'sequences', 'prefix_tree', 'counters', 'tiers'];
const dirty = new Set();
let frame = 0;
// For the page's own test: events received, frames drawn, and how often each costly part was redrawn.
const stats = window.inspectorStats = { events: 0, frames: 0, sequences: 0, tree: 0 };

function receive(event, type) {
  stats.events++;
  if (type === 'delta') {
    // A delta applies to the snapshot it names; if this page does not have it, start over from a whole one.
    if (!latest || event.base !== latest.changes) { disconnect(); connect(); return; }
    for (const part of PARTS) {
      if (!(part in event)) continue;
      if (part === 'blocks') event.blocks.map = patch(latest.blocks.map, event.map_runs, event.blocks.count);
      latest[part] = event[part];
      dirty.add(part);
    }
    if (event.prefix_tree_runs) {
      // The tree's changed nodes at their places: a list cut or grown to its new length, then written over.
      const tree = latest.prefix_tree.slice(0, event.prefix_tree_length);
      for (const [start, nodes] of event.prefix_tree_runs) tree.splice(start, nodes.length, ...nodes);
      latest.prefix_tree = tree;
      dirty.add('prefix_tree');
    }
    latest.step = event.step;
    latest.changes = event.changes;
    latest.taken_at = event.taken_at;
  } else {
    latest = event;
    for (const part of PARTS) dirty.add(part);
  }
  if (!frame) frame = requestAnimationFrame(draw);
}

// The map with each run [first block, "cells"] written over it.
function patch(map, runs, length) {
  let out = '', at = 0;
  for (const [start, cells] of runs) {
    out += map.slice(at, start) + cells;
    at = start + cells.length;
  }
  return (out + map.slice(at)).slice(0, length);
}

// ---- formatting ---------------------------------------------------------------------------------------------

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
}
const count = n => n.toLocaleString('en-US');
const percent = x => (100 * x).toFixed(x > 0 && x < 0.1 ? 1 : 0) + '%';

// Writes only what differs: an unchanged write would still invalidate the element's layout.
function setText(el, value) {
  const s = String(value);
  if (el.textContent !== s) el.textContent = s;
}
const text = (id, value) => setText($(id), value);

// ---- rendering ----------------------------------------------------------------------------------------------

function draw() {
  frame = 0;
  if (!latest || hidden()) return;
  stats.frames++;
  const snapshot = latest;
  text('model-name', snapshot.model.name);
  text('step', count(snapshot.step));
  if (dirty.has('blocks')) renderPool(snapshot.blocks);
  if (dirty.has('sequences') || dirty.has('blocks')) renderSequences(snapshot.sequences, dirty.has('blocks'));
  if (dirty.has('prefix_tree')) renderPrefix(snapshot.prefix_tree);
  if (dirty.has('counters')) renderCounters(snapshot.counters);
  if (dirty.has('tiers')) renderTiers(snapshot.tiers || []);
  if (dirty.has('model') || dirty.has('blocks')) renderModel(snapshot.model, snapshot.blocks);
  dirty.clear();
  // The charts take their sample in the same frame when one is due, so a second of decoding costs the browser one
  // layout and paint, not two; the timer below samples only while no snapshots arrive (rates fall to zero when idle).
  if (!lastSample || performance.now() - lastSample.time >= SAMPLE_MS - FRAME_SLACK_MS) sample();
}

// The map: one cell per block (or per group of blocks, showing the busiest state among them). The cells are made
// once and keep their elements; only a cell whose state changed gets a new class, so a large pool redraws cheaply.
const busiest = { '.': 0, c: 1, u: 2, s: 3 };
function renderPool(blocks) {
  const held = blocks.in_use + blocks.shared;
  text('pool-usage', percent(blocks.count ? held / blocks.count : 0));
  text('pool-blocks', count(held) + ' / ' + count(blocks.count));
  text('pool-bytes', bytes(blocks.used_bytes) + ' / ' + bytes(blocks.total_bytes));
  // KIVI keeps each sequence's newest rows unquantized beside the pool, from a share of the budget set aside for them.
  const exact = blocks.exact_rows_reserved_bytes > 0;
  if ($('exact-rows-stat').hidden === exact) $('exact-rows-stat').hidden = !exact;
  if (exact) text('exact-rows-bytes', bytes(blocks.exact_rows_bytes) + ' / ' + bytes(blocks.exact_rows_reserved_bytes));
  text('pool-type', blocks.element_type);
  text('pool-block-size', blocks.block_size);
  text('count-free', count(blocks.free));
  text('count-in-use', count(blocks.in_use));
  text('count-shared', count(blocks.shared));
  text('count-cached', count(blocks.cached));
  const map = $('block-map');
  for (const [name, value] of [['free', blocks.free], ['inUse', blocks.in_use], ['shared', blocks.shared], ['cached', blocks.cached]])
    if (map.dataset[name] !== String(value)) map.dataset[name] = value;

  const per = Math.max(1, Math.ceil(blocks.count / MAX_CELLS));
  const n = Math.ceil(blocks.count / per);
  if (n !== cells.length || per !== blocksPerCell) {
    blocksPerCell = per;
    cells = [];
    outlined = [];
    const fragment = document.createDocumentFragment(); // thousands of cells, inserted at once
    for (let i = 0; i < n; i++) {
      const cell = document.createElement('i');
      cell.className = 'cell f';
      cell.dataset.index = i;
      cells.push(fragment.appendChild(cell));
    }
    map.replaceChildren(fragment);
    cellStates = '.'.repeat(n);
    text('map-scale', per > 1 ? `1 cell = ${per} blocks (the busiest shown)` : '1 cell = 1 block');
  }
  let states = '';
  for (let i = 0; i < n; i++) {
    let state = '.';
    for (let b = i * per; b < Math.min(blocks.count, (i + 1) * per); b++)
      if (busiest[blocks.map[b]] > busiest[state]) state = blocks.map[b];
    states += state;
    if (state !== cellStates[i]) cells[i].className = 'cell ' + (state === '.' ? 'f' : state) + (outlined.includes(cells[i]) ? ' hl' : '');
  }
  cellStates = states;
}

const stateNames = { '.': 'free', u: 'in use', s: 'shared', c: 'cached, unreferenced' };
$('block-map').addEventListener('mouseover', e => {
  const i = e.target.dataset && e.target.dataset.index;
  if (i === undefined || !latest) return;
  const first = i * blocksPerCell, last = Math.min(latest.blocks.count, first + blocksPerCell) - 1;
  e.target.title = (first === last ? `block ${first}` : `blocks ${first}–${last}`) + ': ' + stateNames[cellStates[i]];
});

// The hovered sequence's blocks are outlined on the map; only the cells that change outline are touched.
let outlined = [];
function highlight(blockTable) {
  const next = blockTable.map(b => cells[Math.floor(b / blocksPerCell)]).filter(c => c);
  for (const cell of outlined) if (!next.includes(cell)) cell.classList.remove('hl');
  for (const cell of next) if (!outlined.includes(cell)) cell.classList.add('hl');
  outlined = next;
}

// The sequence table, one row per sequence kept from snapshot to snapshot by its label: a row's cells are written
// only when their text changes and its block chips only when its block table (or which blocks are shared) does.
const rows = new Map();        // label -> { row, tds, badge, chips, table, tableKey }
const COLUMNS = 8;

function sequenceRow(key) {
  let r = rows.get(key);
  if (r) return r;
  const row = document.createElement('tr');
  const tds = [];
  for (let i = 0; i < COLUMNS; i++) tds.push(row.appendChild(document.createElement('td')));
  const badge = tds[1].appendChild(document.createElement('span'));
  const chips = tds[7].appendChild(document.createElement('div'));
  chips.className = 'blocks';
  r = { row, tds, badge, chips, table: [], tableKey: null };
  row.addEventListener('mouseenter', () => { hovered = key; highlight(r.table); });
  row.addEventListener('mouseleave', () => { hovered = null; highlight([]); });
  rows.set(key, r);
  return r;
}

function renderSequences(sequences, blocksChanged) {
  stats.sequences++;
  const body = $('sequences').tBodies[0];
  $('no-sequences').hidden = sequences.length > 0;
  const seen = new Set();
  let running = 0, waiting = 0;
  sequences.forEach((s, index) => {
    const key = s.sample > 0 ? `#${s.request_id}.${s.sample}` : `#${s.request_id}`;
    seen.add(key);
    const r = sequenceRow(key);
    if (s.state === 'prefill' || s.state === 'decoding') running++; else waiting++;
    if (r.row.dataset.state !== s.state) Object.assign(r.row.dataset, { request: s.request_id, sample: s.sample, state: s.state });
    const ttft = s.time_to_first_token_ms == null ? '–' : s.time_to_first_token_ms.toFixed(1) + ' ms';
    setText(r.tds[0], key);
    setText(r.tds[2], s.prompt_tokens);
    setText(r.tds[3], s.cached_tokens);
    setText(r.tds[4], s.generated_tokens);
    setText(r.tds[5], s.kv_length);
    setText(r.tds[6], ttft);
    // A prompt computed in chunks shows how far it got.
    const state = s.state === 'prefill' ? `prefill ${s.kv_length}/${s.prompt_tokens}` : s.state;
    const className = 'state ' + s.state;
    if (r.badge.className !== className) r.badge.className = className;
    setText(r.badge, s.preemptions > 0 && s.state !== 'preempted' ? `${state} (preempted ${s.preemptions}×)` : state);
    const tableKey = s.block_table.join(' ');
    if (tableKey !== r.tableKey) {
      r.table = s.block_table;
      r.tableKey = tableKey;
      // Tables grow at their end as a sequence decodes: chips up to the first difference stay, only the rest is
      // rewritten (one new chip a block, not the whole row again).
      const chips = r.chips.children;
      let same = 0;
      while (same < chips.length && same < s.block_table.length && chips[same].textContent === String(s.block_table[same])) same++;
      while (chips.length > same) r.chips.lastChild.remove();
      for (let i = same; i < s.block_table.length; i++) r.chips.appendChild(document.createElement('span')).textContent = s.block_table[i];
      markShared(r);
      if (hovered === key) highlight(r.table);
    } else if (blocksChanged) markShared(r);
    // Rows keep their elements; only one that is out of place moves.
    if (body.children[index] !== r.row) body.insertBefore(r.row, body.children[index] || null);
  });
  for (const [key, r] of rows) {
    if (seen.has(key)) continue;
    r.row.remove();
    rows.delete(key);
    if (hovered === key) { hovered = null; highlight([]); }
  }
  text('running-count', running);
  text('waiting-count', waiting);
}

// A chip is violet when its block is shared (refcount > 1).
function markShared(r) {
  const map = latest.blocks.map;
  r.table.forEach((b, i) => {
    const chip = r.chips.children[i];
    const className = map[b] === 's' ? 'chip s' : 'chip';
    if (chip.className !== className) chip.className = className;
  });
}

// The prefix tree: each node a run of chained blocks, laid out left to right by depth, one row per leaf. Redrawn
// only when the tree changed (the server sends it only then), and then incrementally: a run keeps its element by its
// chain and first block, and only what moved or changed (position, label, classes, its edge) is written.
const TREE = { W: 118, H: 20, GAP_X: 26, GAP_Y: 4, CHAIN_W: 62 };
const treeRuns = new Map();    // "chain:first block" -> { g, title, label, hits, edge, state }
const treeChains = new Map();  // chain -> its label
let treeLayers = null;         // { edges, nodes, chains, more }: edges drawn under the runs

function svgElement(parent, tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return parent.appendChild(el);
}

function setAttr(el, name, value) {
  const s = String(value);
  if (el.getAttribute(name) !== s) el.setAttribute(name, s);
}

function renderPrefix(nodes) {
  stats.tree++;
  text('prefix-blocks', count(nodes.reduce((n, node) => n + node.blocks.length, 0)));
  $('no-prefixes').hidden = nodes.length > 0;
  const svg = $('prefix-tree');
  if (!treeLayers) {
    treeLayers = { edges: svgElement(svg, 'g'), nodes: svgElement(svg, 'g'), chains: svgElement(svg, 'g', { class: 'chain' }) };
    treeLayers.more = svgElement(svg, 'text', { x: 0 });
  }
  const { W, H, GAP_X, GAP_Y, CHAIN_W } = TREE;
  const shown = nodes.slice(0, MAX_TREE_NODES);
  const children = new Map();
  const roots = new Map(); // chain -> first-level nodes
  for (const node of shown) {
    if (node.parent >= 0 && node.parent < shown.length) {
      if (!children.has(node.parent)) children.set(node.parent, []);
      children.get(node.parent).push(node);
    } else {
      if (!roots.has(node.chain)) roots.set(node.chain, []);
      roots.get(node.chain).push(node);
    }
  }
  // Busiest branches first: most hits, then most blocks held.
  for (const kids of children.values()) kids.sort((a, b) => b.hits - a.hits || b.held - a.held);
  let row = 0, maxDepth = 0;
  const place = new Map();
  function layout(node, depth) {
    maxDepth = Math.max(maxDepth, depth);
    const kids = children.get(node.id) || [];
    let y;
    if (kids.length === 0) y = row++;
    else y = kids.map(k => layout(k, depth + 1))[0]; // level with its first child: a wide fan-out grows downwards only
    place.set(node.id, { x: CHAIN_W + depth * (W + GAP_X), y: y * (H + GAP_Y) });
    return y;
  }
  const chainY = new Map();
  for (const [chain, first] of roots) {
    const ys = first.map(n => layout(n, 0));
    chainY.set(chain, ys[0] * (H + GAP_Y));
    row += 0.5;
  }

  for (const [chain, y] of chainY) {
    let label = treeChains.get(chain);
    if (!label) {
      label = svgElement(treeLayers.chains, 'text', { x: 0 });
      label.textContent = `chain ${chain}`;
      treeChains.set(chain, label);
    }
    setAttr(label, 'y', y + H / 2 + 4);
  }
  for (const [chain, label] of treeChains) if (!chainY.has(chain)) { label.remove(); treeChains.delete(chain); }

  const seen = new Set();
  for (const node of shown) {
    const p = place.get(node.id);
    if (!p) continue;
    const key = node.chain + ':' + node.blocks[0];
    seen.add(key);
    let run = treeRuns.get(key);
    if (!run) {
      const g = svgElement(treeLayers.nodes, 'g');
      run = { g, title: svgElement(g, 'title'), edge: svgElement(treeLayers.edges, 'path', { class: 'edge' }), state: '' };
      svgElement(g, 'rect', { width: W, height: H });
      run.label = svgElement(g, 'text', { x: 6, y: 14 });
      run.hits = svgElement(g, 'text', { x: W - 6, y: 14, 'text-anchor': 'end', class: 'hits' });
      treeRuns.set(key, run);
    }
    setAttr(run.g, 'transform', `translate(${p.x} ${p.y})`);
    // Its edge comes from its parent's run, or from its chain's label for a chain's first run.
    const q = node.parent >= 0 ? place.get(node.parent) : null;
    const y = p.y + H / 2;
    setAttr(run.edge, 'd', q
      ? `M${q.x + W} ${q.y + H / 2} C ${q.x + W + GAP_X / 2} ${q.y + H / 2}, ${p.x - GAP_X / 2} ${y}, ${p.x} ${y}`
      : `M46 ${chainY.get(node.chain) + H / 2} C ${CHAIN_W - 6} ${chainY.get(node.chain) + H / 2}, ${CHAIN_W - 12} ${y}, ${p.x} ${y}`);
    // What the run shows: written only when some of it changed.
    const state = [node.hits, node.held, node.orphaned, node.blocks.length, node.blocks[node.blocks.length - 1]].join(' ');
    if (state === run.state) continue;
    run.state = state;
    const classes = ['node'];
    if (node.hits > 0) classes.push('hit');
    if (node.held > 0) classes.push('held');
    if (node.orphaned) classes.push('orphaned');
    run.g.setAttribute('class', classes.join(' '));
    run.g.dataset.hits = node.hits;
    run.g.dataset.blocks = node.blocks.join(' ');
    run.title.textContent = `blocks ${node.blocks.join(', ')}\n${node.hits} hit(s) each; ${node.held} held by a sequence, ${node.blocks.length - node.held} cached` +
      (node.orphaned ? '\norphaned: its parent block was evicted' : '');
    const first = node.blocks[0], last = node.blocks[node.blocks.length - 1];
    run.label.textContent = node.blocks.length === 1 ? `b${first}` : `b${first}…b${last} (${node.blocks.length})`;
    run.hits.textContent = node.hits > 0 ? `${node.hits} hit${node.hits > 1 ? 's' : ''}` : '';
  }
  for (const [key, run] of treeRuns) if (!seen.has(key)) { run.g.remove(); run.edge.remove(); treeRuns.delete(key); }

  const more = nodes.length - shown.length;
  setText(treeLayers.more, more > 0 ? `+ ${more} more runs not drawn` : '');
  setAttr(treeLayers.more, 'y', row * (H + GAP_Y) + 14);
  setAttr(svg, 'width', CHAIN_W + (maxDepth + 1) * (W + GAP_X));
  setAttr(svg, 'height', Math.max(H, row * (H + GAP_Y) + (more > 0 ? 24 : 0)));
}

function renderCounters(c) {
  text('hit-rate', percent(c.prefix_hit_rate));
  text('hit-tokens', count(c.prefix_hit_tokens) + ' / ' + count(c.prefix_queried_tokens));
  text('queue-length', count(c.waiting));
  text('preemptions', count(c.preemptions));
}

// One row per tier below RAM; the panel is hidden when the engine has none.
function renderTiers(tiers) {
  $('tiers-panel').hidden = tiers.length === 0;
  if (tiers.length === 0) return;
  const rows = tiers.map(t => {
    const row = document.createElement('tr');
    row.dataset.tier = t.name;
    const found = t.hits + t.misses;
    const values = [t.name, count(t.hits), count(t.misses), found ? percent(t.hits / found) : '–',
      `${count(t.refused)} · ${count(t.timeouts)} · ${count(t.errors)}`, bytes(t.bytes_in), bytes(t.bytes_out), count(t.writes),
      t.lookups ? t.fetch_mean_ms.toFixed(t.fetch_mean_ms < 10 ? 2 : 0) + ' ms' : '–'];
    for (const value of values) {
      const td = document.createElement('td');
      td.textContent = value;
      row.appendChild(td);
    }
    return row;
  });
  $('tiers').tBodies[0].replaceChildren(...rows);
  text('tier-queue', count(tiers[0].write_queue));
  text('tier-dropped', count(tiers[0].writes_dropped));
}

function renderModel(m, blocks) {
  text('model-arch', `${m.architecture}, context ${count(m.context_length)}`);
  const perElement = Number.isInteger(m.bytes_per_element) ? m.bytes_per_element : m.bytes_per_element.toFixed(4);
  text('kv-formula', `2 × ${m.layers} layers × ${m.kv_heads} kv_heads × ${m.head_dim} head_dim × ${perElement} bytes (${m.element_type}) = ` +
    `${count(m.bytes_per_token)} bytes per token; budget ${bytes(m.budget_bytes)} = ${count(blocks.count)} blocks × ${m.block_size} positions`);
  capacity();
}

// The seeds' capacity arithmetic: a contiguous cache reserves the whole context for every session; a paged one
// allocates a block at a time, so a session of L tokens takes ceil(L / block) blocks.
function capacity() {
  if (!latest) return;
  const m = latest.model, blocks = latest.blocks;
  const input = $('session-length');
  if (!lengthChosen) input.value = Math.max(1, Math.round(m.context_length / 4));
  const length = Math.max(1, Math.floor(Number(input.value) || 1));
  const perSession = Math.ceil(length / m.block_size);
  const paged = Math.floor(blocks.count / perSession);
  const contiguous = Math.floor(m.budget_bytes / (m.context_length * m.bytes_per_token));
  text('fit-paged', count(paged));
  text('fit-contiguous', count(contiguous));
  const note = length > m.context_length
    ? `A session of ${count(length)} tokens is longer than the context (${count(m.context_length)}): the engine refuses it.`
    : `Paged: ${perSession} block(s) of ${bytes(m.block_size * m.bytes_per_token)} per session, at most ${m.block_size - 1} positions wasted; ` +
      `contiguous: ${bytes(m.context_length * m.bytes_per_token)} reserved per session whatever its length` +
      (paged > contiguous && contiguous > 0 ? `: ${(paged / contiguous).toFixed(1)}× fewer sessions.` : '.');
  text('capacity-note', note);
}
// Until the reader picks a length, a quarter of the context: a typical session, shorter than the worst case.
let lengthChosen = false;
$('session-length').addEventListener('input', () => { lengthChosen = true; capacity(); });

// ---- charts -------------------------------------------------------------------------------------------------

// Sampled about once a second from the latest snapshot: in the frame that draws a snapshot when one arrives in time,
// else by the timer, so rates fall to zero when the engine is idle and no snapshots come.
const SAMPLE_MS = 1000, FRAME_SLACK_MS = 100;
function sample() {
  if (!latest || hidden()) return;
  const now = performance.now(), c = latest.counters;
  if (lastSample) {
    const seconds = (now - lastSample.time) / 1000;
    push(history.tps, (c.generated_tokens - lastSample.generated) / seconds);
    push(history.preempt, (c.preemptions - lastSample.preemptions) / seconds);
    push(history.queue, c.waiting);
    push(history.hitRate, c.prefix_hit_rate);
    text('tokens-per-second', count(Math.round(history.tps[history.tps.length - 1])));
    chart('tps-chart', history.tps);
    chart('queue-chart', history.queue);
    chart('preempt-chart', history.preempt);
    chart('hit-rate-chart', history.hitRate, 1);
  }
  lastSample = { time: now, generated: c.generated_tokens, preemptions: c.preemptions };
}
// Half a sample late before the timer steps in: snapshots a second apart arrive a little over a second apart.
setInterval(() => { if (!lastSample || performance.now() - lastSample.time >= 1.5 * SAMPLE_MS) sample(); }, SAMPLE_MS / 2);

function push(series, value) {
  series.push(value);
  if (series.length > HISTORY) series.shift();
}

function chart(id, series, max) {
  const svg = $(id);
  const top = max || Math.max(1, ...series);
  const points = series.map((v, i) => `${(300 * i / (HISTORY - 1)).toFixed(1)},${(58 - 56 * v / top).toFixed(1)}`).join(' ');
  let line = svg.firstElementChild;
  if (!line) { line = document.createElementNS(SVG, 'polyline'); svg.appendChild(line); }
  line.setAttribute('points', points);
  svg.dataset.last = series.length ? series[series.length - 1] : 0;
  const scale = $(id + '-max');
  if (scale) scale.textContent = max ? '' : `(max ${top < 10 ? top.toFixed(1) : count(Math.round(top))})`;
}

connect();
