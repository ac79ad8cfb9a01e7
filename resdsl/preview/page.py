"""The preview page: one HTML document, its script and its style (served from fixed routes;
the Content-Security-Policy allows no inline script). The script puts text into the page
with textContent only; the figure is SVG the server has already cleaned (sanitize.py),
parsed with DOMParser, so no markup from the file is ever interpreted as HTML."""

HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>resdsl preview</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <strong>resdsl preview</strong> <span id="file"></span>
  <label>network <select id="network"></select></label>
  <label>style <select id="style">
    <option value="block">block</option><option value="circuit">circuit</option></select></label>
  <label>depth <select id="depth">
    <option value="0">0</option><option value="1" selected>1</option><option value="2">2</option>
    <option value="3">3</option><option value="4">4</option><option value="all">all</option></select></label>
  <span class="save">save
    <button type="button" data-format="svg">SVG</button><button type="button" data-format="pdf">PDF</button><button
    type="button" data-format="png">PNG</button><button type="button" data-format="tikz">TikZ</button></span>
  <span id="status" role="status"></span>
</header>
<section id="diagnostics" aria-live="polite"></section>
<main>
  <div id="figure" data-version="-1"></div>
  <aside><h2>summary</h2><pre id="summary"></pre></aside>
</main>
</body>
</html>
"""

JS = r"""'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  let asked = 0, shown = 0, current = null;

  function params() {
    const q = new URLSearchParams();
    const net = $('network').value;
    if (net) q.set('network', net);
    q.set('style', $('style').value);
    q.set('depth', $('depth').value);
    return q;
  }

  function setNetworks(names, chosen) {
    const sel = $('network');
    const have = Array.from(sel.options).map((o) => o.value);
    if (have.join('\n') !== names.join('\n')) {
      sel.replaceChildren();
      for (const n of names) {
        const o = document.createElement('option');
        o.value = n; o.textContent = n;
        sel.appendChild(o);
      }
    }
    if (chosen && names.includes(chosen)) sel.value = chosen;
    sel.disabled = names.length < 2;
  }

  function showDiagnostics(list, warnings) {
    const box = $('diagnostics');
    box.replaceChildren();
    for (const d of list) {
      const div = document.createElement('div');
      div.className = 'diagnostic';
      const head = document.createElement('p');
      const where = document.createElement('span');
      where.className = 'where';
      where.textContent = d.where;
      const msg = document.createElement('span');
      msg.className = 'message';
      msg.textContent = 'error[' + d.kind + ']: ' + d.message;
      head.append(where, ' ', msg);
      div.appendChild(head);
      if (d.help) {
        const help = document.createElement('p');
        help.className = 'help';
        help.textContent = 'help: ' + d.help;
        div.appendChild(help);
      }
      const pre = document.createElement('pre');
      pre.textContent = d.text;
      div.appendChild(pre);
      box.appendChild(div);
    }
    if (warnings) {
      const w = document.createElement('pre');
      w.className = 'warning';
      w.textContent = 'graphviz: ' + warnings;
      box.appendChild(w);
    }
  }

  function showSvg(text) {
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    const root = doc.documentElement;
    if (root.nodeName !== 'svg') return;
    $('figure').replaceChildren(document.importNode(root, true));
  }

  async function refresh() {
    const mine = ++asked;
    let data;
    try {
      const r = await fetch('/view?' + params().toString(), {cache: 'no-store'});
      data = await r.json();
      if (!r.ok) { $('status').textContent = data.error || 'error'; return; }
    } catch (e) {
      $('status').textContent = 'the preview server is not answering';
      return;
    }
    if (mine < shown) return;  // an older answer after a newer one
    shown = mine;
    current = data;
    $('file').textContent = data.file;
    setNetworks(data.networks, data.network);
    showDiagnostics(data.diagnostics, data.warnings);
    const fig = $('figure');
    if (data.svg) {
      showSvg(data.svg);
      fig.classList.remove('stale');
      $('summary').textContent = data.summary;
    } else {
      fig.classList.add('stale');
    }
    fig.dataset.version = String(data.version);
    fig.dataset.depth = String(data.depth);
    fig.dataset.style = data.style;
    fig.dataset.ok = data.svg ? 'true' : 'false';
  }

  async function save(format) {
    const q = params();
    const body = {format: format, network: q.get('network') || '', style: q.get('style'), depth: q.get('depth')};
    $('status').textContent = 'saving ' + format + ' ...';
    try {
      const r = await fetch('/save', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                      body: JSON.stringify(body)});
      const data = await r.json();
      $('status').textContent = r.ok ? 'wrote ' + data.wrote : data.error;
    } catch (e) {
      $('status').textContent = 'the preview server is not answering';
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    for (const id of ['network', 'style', 'depth']) $(id).addEventListener('change', refresh);
    for (const b of document.querySelectorAll('button[data-format]')) {
      b.addEventListener('click', () => save(b.dataset.format));
    }
    const events = new EventSource('/events');
    events.addEventListener('change', refresh);
    refresh();
  });
})();
"""

CSS = """
body { font: 14px system-ui, sans-serif; margin: 0; color: #222; }
header { display: flex; flex-wrap: wrap; gap: 0.5em 1.2em; align-items: center; padding: 0.6em 1em;
         background: #f3f3f3; border-bottom: 1px solid #ccc; position: sticky; top: 0; }
#file { font-family: monospace; color: #555; }
#status { font-family: monospace; color: #064; }
main { display: flex; gap: 1em; padding: 1em; align-items: flex-start; }
#figure { flex: 1 1 auto; overflow: auto; }
#figure.stale { opacity: 0.35; }
aside { flex: 0 1 auto; max-width: 48em; overflow: auto; }
aside h2 { font-size: 1em; margin: 0 0 0.4em; }
#summary { font-size: 12px; }
.diagnostic { margin: 0.6em 1em; padding: 0.4em 0.8em; border-left: 4px solid #c00; background: #fff4f4; }
.diagnostic p { margin: 0.2em 0; }
.diagnostic .where { font-family: monospace; font-weight: bold; }
.diagnostic .message { color: #a00; }
.diagnostic pre, .warning { font-size: 12px; margin: 0.4em 0; }
.warning { margin: 0.6em 1em; color: #850; }
button { margin-left: 0.2em; }
"""
