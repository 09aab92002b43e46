// The ddi dependency graph: functions on the left, providers on the right,
// an edge per binding, unresolved dependencies in red with their reason.
// It reads /v1/graph/events (server-sent events, the whole graph on every
// change) and POST /v1/explain for the details of a function.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const FN_W = 320, PROV_W = 290, HEAD = 38, ROW = 16, GAP = 10, PROV_H = 54, UNRES_W = 300, TOP = 12;

  let graph = null;       // the last Graph received
  let provByKey = new Map();
  let consumersOf = new Map(); // provider key -> [{fn, dep}]
  let selected = '';      // "f:ns/name" or "p:ns/name"
  let painted = false;

  const escapeMap = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => escapeMap[c]);
  const trunc = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  const key = (o) => o.namespace + '/' + o.name;

  function connect() {
    const es = new EventSource('/v1/graph/events');
    es.addEventListener('graph', (ev) => {
      graph = JSON.parse(ev.data);
      index();
      fillFilters();
      render();
      showDetails(false);
    });
    es.addEventListener('open', () => $('status').classList.remove('down'));
    es.addEventListener('error', () => {
      $('status').textContent = 'disconnected from the control plane; reconnecting…';
      $('status').classList.add('down');
    });
  }

  function index() {
    provByKey = new Map(graph.providers.map((p) => [key(p), p]));
    consumersOf = new Map();
    for (const f of graph.functions) {
      for (const d of f.dependencies) {
        for (const e of targets(d)) {
          if (!consumersOf.has(e.provider)) consumersOf.set(e.provider, []);
          consumersOf.get(e.provider).push({ fn: f, dep: e });
        }
      }
    }
  }

  // targets returns the edges of a dependency: one to its provider, or
  // one per resolved target of a weighted split, carrying its share.
  function targets(d) {
    if (!d.provider) return [];
    if (!d.split) return [d];
    return d.split.filter((t) => t.provider).map((t) => ({ ...d, provider: t.provider, share: t.share }));
  }

  // depLabel is a dependency's line in its function's box; a split shows
  // every target's share ("greeter → default/v1 90% · default/v2 10%").
  function depLabel(d) {
    if (!d.provider) return d.alias + '=' + d.selector + ' ✕ unresolved';
    if (!d.split) return d.alias + '=' + d.selector + ' → ' + d.provider;
    return d.alias + ' → ' + d.split.map((t) => (t.provider || '✕ unresolved') + ' ' + t.share + '%').join(' · ');
  }

  function fillSelect(sel, values) {
    const cur = sel.value;
    const want = [''].concat(values);
    if (sel.options.length === want.length && want.every((v, i) => sel.options[i].value === v)) return;
    sel.replaceChildren(...want.map((v) => {
      const o = document.createElement('option');
      o.value = v;
      o.textContent = v || 'all';
      return o;
    }));
    sel.value = want.includes(cur) ? cur : '';
  }

  function fillFilters() {
    const ns = new Set(), types = new Set();
    for (const f of graph.functions) ns.add(f.namespace);
    for (const p of graph.providers) { ns.add(p.namespace); types.add(p.type); }
    fillSelect($('f-namespace'), [...ns].sort());
    fillSelect($('f-type'), [...types].sort());
  }

  // selectorType returns the type a selector names ("http" of "ns/http@^1,x=y").
  function selectorType(sel) {
    const at = sel.indexOf('@');
    if (at < 0) return '';
    const t = sel.slice(0, at);
    return t.slice(t.indexOf('/') + 1);
  }

  // visible applies the filters: a function or provider that matches is
  // shown with what it is bound to.
  function visible() {
    const ns = $('f-namespace').value, type = $('f-type').value;
    const name = $('f-name').value.trim().toLowerCase(), unres = $('f-unresolved').checked;
    const nameOK = (o) => !name || key(o).toLowerCase().includes(name);
    const fnType = (f) => !type || f.dependencies.some((d) =>
      (d.provider && provByKey.get(d.provider)?.type === type) || selectorType(d.selector) === type);
    const fnMatch = (f) => (!ns || f.namespace === ns) && nameOK(f) && fnType(f) &&
      (!unres || f.dependencies.some((d) => d.unresolved));
    const provMatch = (p) => !unres && (!ns || p.namespace === ns) && nameOK(p) && (!type || p.type === type);
    const fns = new Set(), provs = new Set();
    for (const f of graph.functions) {
      if (!fnMatch(f)) continue;
      fns.add(f);
      for (const d of f.dependencies) for (const e of targets(d)) if (provByKey.has(e.provider)) provs.add(provByKey.get(e.provider));
    }
    for (const p of graph.providers) {
      if (!provMatch(p)) continue;
      provs.add(p);
      for (const c of consumersOf.get(key(p)) || []) fns.add(c.fn);
    }
    const byKey = (a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
    return { fns: [...fns].sort(byKey), provs: [...provs] };
  }

  // layout places every shown node; draw puts only those near the visible
  // part of the canvas into the SVG, so a graph of thousands of nodes costs
  // what a screenful costs.
  let layout = null;
  const MARGIN = 800; // px drawn above and below the visible part

  function render() {
    const t0 = performance.now();
    const { fns, provs } = visible();
    const canvas = $('canvas');
    const width = Math.max(canvas.clientWidth - 4, FN_W + UNRES_W + PROV_W + 120);
    const xF = 10, xP = width - PROV_W - 10, xU = xF + FN_W + 40;
    // Functions top to bottom; each dependency is a row and an edge's start.
    const rowY = new Map(); // "fnKey\0alias" -> y
    const fnPos = [];
    let y = TOP;
    for (const f of fns) {
      const h = HEAD + ROW * f.dependencies.length + 6;
      fnPos.push({ f, y, h });
      f.dependencies.forEach((d, i) => rowY.set(key(f) + '\0' + d.alias, y + HEAD + ROW * i + 8));
      y += h + GAP;
    }
    // Providers ordered by the mean height of their consumers' rows, which
    // keeps edges short and mostly uncrossed.
    const weight = new Map();
    for (const p of provs) {
      let sum = 0, n = 0;
      for (const c of consumersOf.get(key(p)) || []) {
        const ry = rowY.get(key(c.fn) + '\0' + c.dep.alias);
        if (ry !== undefined) { sum += ry; n++; }
      }
      weight.set(p, n ? sum / n : Infinity);
    }
    provs.sort((a, b) => weight.get(a) - weight.get(b) || (key(a) < key(b) ? -1 : 1));
    const provY = new Map();
    const provPos = [];
    let py = TOP;
    for (const p of provs) {
      provY.set(key(p), py);
      provPos.push({ p, y: py });
      py += PROV_H + GAP;
    }
    const height = Math.max(y, py) + TOP;
    layout = { fnPos, provPos, provY, rowY, width, height, xF, xP, xU, drawn: null };
    const svg = $('graph');
    svg.setAttribute('width', width);
    svg.setAttribute('height', height);
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    draw(true);
    const unresolved = graph.functions.reduce((n, f) => n + f.dependencies.filter((d) => d.unresolved).length, 0);
    // With several controller replicas: how many answered, and which did
    // not (their functions' sidecars are missing from the graph).
    const replicas = graph.replicas || [];
    const silent = replicas.filter((r) => r.error);
    const repText = replicas.length === 0 ? '' : ` · ${replicas.length - silent.length}/${replicas.length} replicas` +
      silent.map((r) => ` · ${r.name ? 'replica ' + r.name + ' did not answer' : 'other replicas unknown'}: ${r.error}`).join('');
    $('status').textContent = `revision ${graph.revision} · ${graph.functions.length} functions · ${graph.providers.length} providers · ` +
      `${unresolved} unresolved · showing ${fns.length}+${provs.length}${repText} · updated ${new Date().toLocaleTimeString()}`;
    $('status').classList.toggle('partial', silent.length > 0);
    window.ddiShown = { functions: fns.length, providers: provs.length };
    window.ddiLastRenderMs = performance.now() - t0;
    window.ddiRevision = graph.revision;
    if (!painted) {
      painted = true;
      // The second frame is the first one painted with the graph in it.
      requestAnimationFrame(() => requestAnimationFrame(() => {
        window.ddiFirstPaintMs = performance.now();
        document.body.dataset.painted = 'true';
      }));
    }
  }

  // first returns the index of the first item whose bottom is below top
  // (items sorted by y).
  function first(items, top, height) {
    let lo = 0, hi = items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (items[mid].y + height(items[mid]) < top) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  // draw fills the SVG with the nodes and edges near the visible part;
  // without force it does nothing while the visible part stays inside
  // what was drawn.
  function draw(force) {
    const L = layout;
    if (!L) return;
    const canvas = $('canvas');
    const top = canvas.scrollTop, bottom = top + canvas.clientHeight;
    if (!force && L.drawn && top >= L.drawn.top && bottom <= L.drawn.bottom) return;
    const from = Math.max(0, top - MARGIN), to = bottom + MARGIN;
    L.drawn = { top: from + (top > MARGIN ? MARGIN / 2 : 0), bottom: to - MARGIN / 2 };
    const edges = [], nodes = [], boxes = [];
    const hotFn = selected.startsWith('f:') ? selected.slice(2) : '';
    const hotProv = selected.startsWith('p:') ? selected.slice(2) : '';
    const { xF, xP, xU } = L;
    const edge = (fk, d, y1) => {
      const y2 = L.provY.get(d.provider) + PROV_H / 2, x1 = xF + FN_W, x2 = xP, dx = (x2 - x1) / 2;
      const hot = hotFn === fk || hotProv === d.provider;
      edges.push(`<path class="edge${hot ? ' hot' : ''}" d="M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}">` +
        `<title>${esc(fk + ': ' + d.alias + '=' + d.selector + ' → ' + d.provider + (d.share !== undefined ? ' (' + d.share + '% of invocations)' : ''))}</title></path>`);
    };
    const drawnFns = new Set();
    for (let i = first(L.fnPos, from, (x) => x.h); i < L.fnPos.length && L.fnPos[i].y <= to; i++) {
      const { f, y, h } = L.fnPos[i];
      const fk = key(f);
      drawnFns.add(fk);
      const acked = f.sidecars.map((s) => s.ackedVersion);
      const ackErr = f.sidecars.some((s) => s.ackError);
      nodes.push(`<g class="node fn${selected === 'f:' + fk ? ' selected' : ''}" data-k="f:${esc(fk)}" transform="translate(${xF},${y})">` +
        `<rect class="box" width="${FN_W}" height="${h}" rx="4"></rect>` +
        `<text class="title" x="8" y="15">${esc(trunc(f.name, 40))}</text>` +
        `<text class="sub" x="8" y="30">${esc(f.namespace)} · ${f.sidecars.length} sidecar${f.sidecars.length === 1 ? '' : 's'} · acked v${esc(acked.join(', v'))}${ackErr ? ' · NACK' : ''}</text>`);
      f.dependencies.forEach((d, j) => {
        const label = depLabel(d);
        nodes.push(`<text class="dep${d.unresolved ? ' unres' : ''}" x="12" y="${HEAD + ROW * j + 12}">${esc(trunc(label, 52))}<title>${esc(label)}</title></text>`);
        const y1 = y + HEAD + ROW * j + 8;
        if (d.provider) {
          for (const e of targets(d)) if (L.provY.has(e.provider)) edge(fk, e, y1);
        } else if (d.unresolved) {
          edges.push(`<path class="edge unres" d="M${xF + FN_W},${y1} L${xU},${y1}"></path>`);
          boxes.push(`<g class="unresolved node" data-k="f:${esc(fk)}" data-alias="${esc(d.alias)}" transform="translate(${xU},${y1 - 9})">` +
            `<rect width="${UNRES_W}" height="18" rx="3"></rect>` +
            `<text x="6" y="13">${esc(trunc(d.alias + ': ' + d.unresolved, 58))}</text>` +
            `<title>${esc(fk + ' ' + d.alias + '=' + d.selector + ' is unresolved: ' + d.unresolved)}</title></g>`);
        }
      });
      nodes.push('</g>');
    }
    for (let i = first(L.provPos, from, () => PROV_H); i < L.provPos.length && L.provPos[i].y <= to; i++) {
      const { p, y } = L.provPos[i];
      const pk = key(p);
      // Edges from functions outside the drawn part end here too.
      for (const c of consumersOf.get(pk) || []) {
        const fk = key(c.fn);
        const y1 = L.rowY.get(fk + '\0' + c.dep.alias);
        if (!drawnFns.has(fk) && y1 !== undefined) edge(fk, c.dep, y1);
      }
      const total = (p.endpoints || []).length;
      const cls = 'node prov' + (p.ready === 0 ? ' unready' : '') + (p.lease ? ' leased' : '') + (selected === 'p:' + pk ? ' selected' : '');
      const lease = p.lease ? 'run-time, lease ' + leaseLeft(p.lease) : 'declared';
      nodes.push(`<g class="${cls}" data-k="p:${esc(pk)}" transform="translate(${xP},${y})">` +
        `<rect class="box" width="${PROV_W}" height="${PROV_H}" rx="4"></rect>` +
        `<text class="title" x="8" y="15">${esc(trunc(p.name, 38))}</text>` +
        `<text class="sub" x="8" y="30">${esc(trunc(p.namespace + ' · ' + p.type + ' ' + (p.version || '(no version)'), 44))}</text>` +
        `<text class="sub" x="8" y="45">${p.ready}/${total} ready · ${esc(lease)}</text></g>`);
    }
    if (!L.fnPos.length && !L.provPos.length) {
      nodes.push(`<text class="empty" x="20" y="40">${graph.functions.length || graph.providers.length ?
        'Nothing matches the filters.' : 'No function is connected and no provider is registered yet.'}</text>`);
    }
    $('graph').innerHTML = edges.join('') + nodes.join('') + boxes.join('');
  }

  function leaseLeft(lease) {
    const s = Math.round((Date.parse(lease.expiresAt) - Date.now()) / 1000);
    return s >= 0 ? 'expires in ' + s + 's' : 'expired';
  }

  function table(rows, head) {
    return '<table>' + (head ? '<tr>' + head.map((h) => `<th>${esc(h)}</th>`).join('') + '</tr>' : '') +
      rows.join('') + '</table>';
  }
  const kv = (m) => Object.entries(m || {}).map(([k, v]) => k + '=' + v).join(', ') || '—';

  // showDetails fills the side panel for the selected node; explain asks
  // the control plane for the explanations again.
  function showDetails(explain) {
    const panel = $('details');
    if (!selected || !graph) return;
    const k = selected.slice(2);
    if (selected.startsWith('p:')) {
      const p = provByKey.get(k);
      if (!p) { panel.innerHTML = `<h2>${esc(k)}</h2><p class="bad">This provider is gone.</p>`; return; }
      const eps = (p.endpoints || []).map((e) => `<tr><td>${esc(e.url)}</td><td class="${e.ready ? 'ok' : 'bad'}">${e.ready ? 'ready' : 'not ready'}</td></tr>`);
      const cons = (consumersOf.get(k) || []).map((c) => `<tr><td>${esc(key(c.fn))}</td><td>${esc(c.dep.alias + '=' + c.dep.selector)}</td></tr>`);
      panel.innerHTML = `<h2>provider ${esc(k)}</h2>` + table([
        `<tr><th>type</th><td>${esc(p.type)}</td></tr>`,
        `<tr><th>version</th><td>${esc(p.version || '(none: 0.0.0)')}</td></tr>`,
        `<tr><th>labels</th><td>${esc(kv(p.labels))}</td></tr>`,
        `<tr><th>ready</th><td class="${p.ready ? 'ok' : 'bad'}">${p.ready}/${(p.endpoints || []).length} endpoints</td></tr>`,
        `<tr><th>scope</th><td>${esc(JSON.stringify(p.scope || {}))}</td></tr>`,
        `<tr><th>registered</th><td>${p.lease ? esc('at run time by ' + (p.owner || '?') + ', lease ' + p.lease.ttl + ', ' + leaseLeft(p.lease)) : 'declared'}</td></tr>`,
        `<tr><th>config keys</th><td>${esc(Object.keys(p.config || {}).join(', ') || '—')}</td></tr>`,
        `<tr><th>secret keys</th><td>${esc((p.secretKeys || []).join(', ') || '—')}</td></tr>`,
        `<tr><th>revision</th><td>${p.revision}</td></tr>`,
      ]) + '<h3>Endpoints</h3>' + table(eps) + `<h3>Bound consumers (${cons.length})</h3>` + table(cons, ['function', 'dependency']);
      return;
    }
    const f = graph.functions.find((x) => key(x) === k);
    if (!f) { panel.innerHTML = `<h2>${esc(k)}</h2><p class="bad">No sidecar of this function is connected any more.</p>`; return; }
    const reps = (graph.replicas || []).length > 0;
    const sc = f.sidecars.map((s) => `<tr><td>${esc(s.id)}</td><td>${s.sentVersion}</td><td>${s.ackedVersion}</td><td class="bad">${esc(s.ackError || '')}</td>` +
      (reps ? `<td>${esc(s.replica || '')}</td>` : '') + '</tr>');
    const deps = f.dependencies.map((d) => `<tr><td>${esc(d.alias)}</td><td>${esc(d.selector)}</td>` +
      (d.provider ? `<td class="ok">${esc(d.split ? depLabel(d) : d.provider)}</td>` : `<td class="bad">unresolved: ${esc(d.unresolved)}</td>`) + '</tr>');
    const old = panel.querySelector('#explanations');
    panel.innerHTML = `<h2>function ${esc(k)}</h2>` + table([
      `<tr><th>service account</th><td>${esc(f.serviceAccount || '—')}</td></tr>`,
      `<tr><th>labels</th><td>${esc(kv(f.labels))}</td></tr>`,
    ]) + '<h3>Sidecars</h3>' + table(sc, reps ? ['id', 'sent', 'acked', 'error', 'replica'] : ['id', 'sent', 'acked', 'error']) +
      '<h3>Dependencies</h3>' + table(deps, ['alias', 'selector', 'bound to']) +
      '<h3>Why (resolution, docs/resolution.md)</h3><div id="explanations"></div>';
    // Explanations are asked again when the providers changed (a new
    // revision), not on every sidecar acknowledgement.
    // Until they arrive, the previous ones of the same function stay.
    const fresh = explainedFor === selected + '@' + graph.revision;
    if (old && !explain) panel.querySelector('#explanations').replaceWith(old);
    if (explain || !old || !fresh) explainAll(f);
  }

  let explainSeq = 0;
  let explainedFor = '';
  async function explainAll(f) {
    const seq = ++explainSeq;
    explainedFor = 'f:' + key(f) + '@' + graph.revision;
    const consumer = { namespace: f.namespace, name: f.name, serviceAccount: f.serviceAccount, labels: f.labels };
    const parts = await Promise.all(f.dependencies.map(async (d) => {
      try {
        const resp = await fetch('/v1/explain', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ consumer, dependency: d.alias + '=' + d.selector }),
        });
        const body = await resp.json();
        if (!resp.ok) return `<p class="bad">${esc(d.alias)}: ${esc(body.detail || resp.statusText)}</p>`;
        return renderExplanation(body);
      } catch (e) {
        return `<p class="bad">${esc(d.alias)}: ${esc(e.message)}</p>`;
      }
    }));
    const box = $('explanations');
    if (seq === explainSeq && box && selected === 'f:' + key(f)) box.innerHTML = parts.join('');
  }

  function renderExplanation(ex) {
    if (ex.split) {
      const head = `<p><b>${esc(ex.dependency)}</b>=${esc(ex.selector)} splits invocations: ` +
        (ex.chosen ? `<span class="ok">primary ${esc(ex.chosen)}</span>` : `<span class="bad">unresolved: ${esc(ex.unresolved)}</span>`) + '</p>';
      return head + ex.split.map((t) => `<p class="muted">weight ${t.weight}%, share ${t.share}%${t.primary ? ' (primary)' : ''}</p>` +
        renderExplanation({ ...t, dependency: ex.dependency })).join('');
    }
    const head = `<p><b>${esc(ex.dependency)}</b>=${esc(ex.selector)} looks in namespace ${esc(ex.namespace)}: ` +
      (ex.chosen ? `<span class="ok">chose ${esc(ex.chosen)}</span>` : `<span class="bad">unresolved: ${esc(ex.unresolved)}</span>`) +
      (ex.hidden ? ` <span class="muted">(${ex.hidden} not shown)</span>` : '') + '</p>';
    const rows = ex.candidates.map((c) => `<tr class="${c.chosen ? 'chosen' : c.admitted ? '' : 'rejected'}">` +
      `<td>${c.chosen ? '✔ 1' : c.admitted ? c.rank : '✕'}</td><td>${esc(c.provider)}</td><td>${esc(c.version || '—')}</td>` +
      `<td>${esc(c.rule || '')}</td><td>${esc(c.detail)}</td></tr>`);
    return head + (rows.length ? table(rows, ['', 'provider', 'version', 'rule', 'why']) : '<p class="muted">no candidate</p>');
  }

  function select(k) {
    selected = k;
    render();
    showDetails(true);
  }

  $('graph').addEventListener('click', (ev) => {
    const g = ev.target.closest('[data-k]');
    if (g) select(g.dataset.k);
  });
  for (const id of ['f-namespace', 'f-type', 'f-unresolved']) $(id).addEventListener('change', () => graph && render());
  let typing = 0;
  $('f-name').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => graph && render(), 150);
  });
  window.addEventListener('resize', () => graph && render());
  let scrolling = false;
  $('canvas').addEventListener('scroll', () => {
    if (scrolling) return;
    scrolling = true;
    requestAnimationFrame(() => { scrolling = false; draw(false); });
  }, { passive: true });
  connect();
})();
