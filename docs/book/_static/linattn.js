/* Draw a stored plotly figure (and its frames: the kernel-free explorers' slider positions).
   On a narrow screen (a phone) a figure whose panels stand side by side is redrawn with its panels
   stacked, its legend under them and its title wrapped (linattnNarrow); a figure that moves through
   frames keeps its layout (every frame carries the axes) and scrolls sideways inside its own box.
   Crossing the width back (a phone turned) redraws the other layout. */
var LINATTN_NARROW = 640;  /* px of column below which panels stack */

var LINATTN_MIN_MOVING = 680;  /* px: a figure with frames needs this much; narrower, it scrolls sideways */
var LINATTN_CONFIG = {responsive: true, displaylogo: false};

window.linattnPlot = function (id, fig) {
  var draw = function () {
    var gd = document.getElementById(id);
    var moving = !!((fig.frames && fig.frames.length) || (fig.layout.sliders || []).length ||
                    (fig.layout.updatemenus || []).length);
    var shown = null, crowded = false;  /* crowded: the narrow layout did not fit; narrow, it scrolls */
    var render = function () {
      var width = (gd.parentElement || gd).clientWidth;
      var mode = moving ? (width < LINATTN_MIN_MOVING ? 'scroll' : 'as-built')
                        : width >= LINATTN_NARROW ? 'as-built'
                        : crowded || linattnSquareCells(fig.layout || {}) ? 'scroll'
                        : linattnPanels(fig.layout || {}) ? 'stacked' : 'as-built';
      if (mode === shown) { return; }
      shown = mode;
      gd.classList.toggle('linattn-scroll-figure', mode === 'scroll');
      gd.setAttribute('data-linattn-layout', mode);
      var out = mode === 'stacked' ? linattnNarrow(fig, width) : JSON.parse(JSON.stringify(
        {data: fig.data || [], layout: fig.layout || {}, frames: fig.frames || []}));
      Plotly.react(gd, {data: out.data, layout: out.layout, config: LINATTN_CONFIG}).then(function () {
        return linattnFitTexts(gd, out);
      }).then(function () {
        if (out.frames && out.frames.length) { return Plotly.addFrames(gd, out.frames); }
      }).then(function () {
        /* a figure that still does not fit a narrow column scrolls sideways at its built layout */
        if (mode !== 'scroll' && width < LINATTN_NARROW && linattnCrowded(gd)) { crowded = true; render(); }
      });
    };
    render();
    window.addEventListener('resize', render);
  };
  if (window.Plotly) { draw(); } else { window.addEventListener('DOMContentLoaded', draw); }
};

/* Boxes of the drawn texts that must stay apart and inside the figure: the title and paper annotations. */
function linattnTextBoxes(gd) {
  var fl = gd._fullLayout, out = [];
  gd.querySelectorAll('.infolayer .gtitle').forEach(function (el) { out.push({kind: 'title', el: el}); });
  gd.querySelectorAll('.infolayer .annotation').forEach(function (el) {
    var a = (fl.annotations || [])[+el.getAttribute('data-index')] || {};
    out.push({kind: a.yref === 'paper' || a.xref === 'paper' ? 'note' : 'label', el: el, index: +el.getAttribute('data-index')});
  });
  gd.querySelectorAll('.colorbar').forEach(function (el) { out.push({kind: 'bar', el: el}); });
  out.forEach(function (t) { t.box = t.el.getBoundingClientRect(); });
  return out.filter(function (t) { return t.box.width > 0; });
}

/* True when box t (of linattnTextBoxes) runs past the figure's edge g or over another of `others`. */
function linattnClashes(t, others, g) {
  return t.box.left < g.left - 1 || t.box.right > g.right + 1 || others.some(function (o) {
    return o !== t && Math.min(t.box.right, o.box.right) - Math.max(t.box.left, o.box.left) > 1 &&
           Math.min(t.box.bottom, o.box.bottom) - Math.max(t.box.top, o.box.top) > 1;
  });
}

/* True when a drawn title, annotation or colourbar runs past the figure's edge or over another one. */
function linattnCrowded(gd) {
  var g = gd.getBoundingClientRect(), texts = linattnTextBoxes(gd);
  return texts.some(function (t) { return linattnClashes(t, texts, g); });
}

/* The lines of a plotly text ("a<br>b"). */
function linattnLines(text) { return String(text || '').split(/<br\s*\/?>/i); }

/* Wrap the title to the figure's width and each paper annotation to its panel's width, measured on the
   drawn figure; the same wrap goes into every frame (a frame carries the title and panel titles). */
function linattnFitTexts(gd, out) {
  var fl = gd._fullLayout, size = fl._size, g = gd.getBoundingClientRect();
  var plain = function (t) { return String(t || '').replace(/<[^>]*>/g, ''); };
  var limit = function (text, drawn, room) {  /* characters a line may hold so that it fits `room` px */
    var n = Math.max.apply(null, linattnLines(text).map(function (l) { return plain(l).length; }));
    return drawn > room ? Math.max(12, Math.floor(n * room / drawn) - 1) : 0;
  };
  var xs = Object.keys(fl).filter(function (k) { return /^xaxis\d*$/.test(k) && fl[k] && fl[k].domain; });
  var panelRoom = function (x) {
    var best = g.width - 10;
    xs.forEach(function (k) {
      var d = fl[k].domain;
      if (xs.length > 1 && x >= d[0] - 0.01 && x <= d[1] + 0.01) { best = Math.min(best, (d[1] - d[0]) * size.w + 20); }
    });
    return best;
  };
  var titleChars = 0, noteChars = {}, extraTop = 0;
  var texts = linattnTextBoxes(gd).filter(function (t) { return t.kind !== 'bar'; });
  texts.forEach(function (t) {
    if (t.kind === 'title') {
      titleChars = limit(fl.title.text, t.box.width, g.width - 16);
    } else if (t.kind === 'note' && linattnClashes(t, texts, g)) {  /* a panel title that fits stays one line */
      var a = fl.annotations[t.index];
      var chars = limit(a.text, t.box.width, a.xref === 'paper' ? panelRoom(a.x) : g.width - 16);
      if (chars) { noteChars[t.index] = chars; }
    }
  });
  var wrapTitle = function (layout) {
    if (!titleChars || !layout.title) { return; }
    var title = typeof layout.title === 'object' ? layout.title : {text: layout.title};
    var lines = linattnWrap(title.text, titleChars, 1);
    title.text = lines.join('<br>');
    layout.title = title;
    return lines.length;
  };
  var wrapNotes = function (layout) {
    var added = 0;
    (layout.annotations || []).forEach(function (a, i) {
      if (noteChars[i]) {
        var lines = linattnWrap(a.text, noteChars[i], 1);
        added = Math.max(added, lines.length - linattnLines(a.text).length);
        a.text = lines.join('<br>');
      }
    });
    return added;
  };
  if (!titleChars && !Object.keys(noteChars).length) { return Promise.resolve(); }
  var before = linattnLines((fl.title || {}).text).length;
  var titleLines = wrapTitle(out.layout) || before;
  extraTop = wrapNotes(out.layout) * 22 + (titleLines - before) * 22;
  (out.frames || []).forEach(function (f) { if (f.layout) { wrapTitle(f.layout); wrapNotes(f.layout); } });
  out.layout.margin = out.layout.margin || {};
  out.layout.margin.t = (fl.margin.t || 0) + Math.max(0, extraTop);
  if (extraTop > 0 && out.layout.title) {  /* the title stays at the top; the panels move down under it */
    var title = typeof out.layout.title === 'object' ? out.layout.title : {text: out.layout.title};
    Object.assign(title, {yref: 'container', y: 1, yanchor: 'top', pad: {t: 10}});
    out.layout.title = title;
  }
  if (out.layout.height) { out.layout.height += Math.max(0, extraTop); }
  return Plotly.react(gd, {data: out.data, layout: out.layout, config: LINATTN_CONFIG});
}

/* The panels of a one-row grid, left to right: [{x: 'xaxis2', y: 'yaxis2', domain: [a, b]}], or null. */
function linattnPanels(layout) {
  var list = Object.keys(layout).filter(function (k) {
    return /^xaxis\d*$/.test(k) && layout[k] && layout[k].domain && !layout[k].overlaying;
  }).map(function (k) {
    var anchor = layout[k].anchor;
    var y = anchor && anchor !== 'free' ? 'yaxis' + anchor.slice(1) : 'yaxis' + k.slice(5);
    return {x: k, y: y, domain: layout[k].domain};
  });
  if (list.length < 2) { return null; }
  var rows = {};
  list.forEach(function (p) { var d = (layout[p.y] || {}).domain || [0, 1]; rows[d.join(',')] = d; });
  if (Object.keys(rows).length !== 1) { return null; }  /* already several rows: leave it */
  list.sort(function (a, b) { return a.domain[0] - b.domain[0]; });
  for (var i = 1; i < list.length; i++) {
    if (list[i].domain[0] < list[i - 1].domain[1] - 1e-6) { return null; }  /* overlapping: not a grid */
  }
  list.rowDomain = rows[Object.keys(rows)[0]];
  return list;
}

/* Two or more panels side by side with square cells (heatmaps): too small to read when squeezed, and
   their grid is kept (such a figure scrolls instead of stacking). */
function linattnSquareCells(layout) {
  var starts = {};
  Object.keys(layout).forEach(function (k) {
    if (/^xaxis\d*$/.test(k) && layout[k] && layout[k].domain) { starts[layout[k].domain[0].toFixed(3)] = true; }
  });
  return Object.keys(starts).length >= 2 && Object.keys(layout).some(function (k) {
    return /^[xy]axis\d*$/.test(k) && layout[k] && layout[k].scaleanchor; });
}

/* Wrap "a<br>b<sup>c</sup>" into lines of at most `chars` characters (a subtitle `sup` times as many: its
   letters are smaller; 1 when `chars` was measured on the drawn lines). */
function linattnWrap(text, chars, sup) {
  var lines = [];
  linattnLines(text).forEach(function (part) {
    var small = /^\s*<sup>([\s\S]*)<\/sup>\s*$/i.exec(part);
    var body = small ? small[1] : part, limit = small ? Math.floor(chars * (sup || 1.3)) : chars, line = '';
    body.split(/\s+/).forEach(function (word) {
      if (line && (line + ' ' + word).replace(/<[^>]*>/g, '').length > limit) {
        lines.push(small ? '<sup>' + line + '</sup>' : line);
        line = word;
      } else { line = line ? line + ' ' + word : word; }
    });
    if (line) { lines.push(small ? '<sup>' + line + '</sup>' : line); }
  });
  return lines;
}

/* The figure for a column `width` px wide: side-by-side panels stacked top to bottom (each 300 px tall),
   panel titles, paper notes, shapes and colourbars moved with their panel, the legend under the panels,
   the title wrapped to the width. Returns {data, layout} (copies), or null when nothing stands side by side. */
function linattnNarrow(fig, width) {
  var layout = JSON.parse(JSON.stringify(fig.layout || {}));
  var data = JSON.parse(JSON.stringify(fig.data || []));
  var panels = linattnPanels(layout);
  if (!panels) { return null; }
  var k = panels.length, panelPx = 300, gapPx = 90;
  var named = data.filter(function (t) { return t.name && t.showlegend !== false; }).length;
  var legendPx = layout.showlegend === false || !named ? 0 : 60 + 22 * named;
  var plotPx = k * panelPx + (k - 1) * gapPx + legendPx;
  var slot = function (c) {  /* [bottom, top] of panel c, in the plot area's paper fraction */
    var top = 1 - c * (panelPx + gapPx) / plotPx;
    return [top - panelPx / plotPx, top];
  };
  var row = panels.rowDomain;
  var column = function (x) {  /* which panel a paper x belongs to, or -1 */
    for (var c = 0; c < k; c++) { var d = panels[c].domain; if (x >= d[0] - 0.02 && x <= d[1] + 0.02) { return c; } }
    return -1;
  };
  var mapX = function (x, c) { var d = panels[c].domain; return (x - d[0]) / (d[1] - d[0]); };
  var mapY = function (y, c) { var s = slot(c); return s[0] + (y - row[0]) / (row[1] - row[0]) * (s[1] - s[0]); };
  panels.forEach(function (p, c) {
    layout[p.x].domain = [0, 1];
    layout[p.y] = layout[p.y] || {};
    layout[p.y].domain = slot(c);
  });
  (layout.annotations || []).forEach(function (a) {
    if ((a.xref || 'paper') !== 'paper' || (a.yref || 'paper') !== 'paper') { return; }
    var c = column(a.x === undefined ? 0.5 : a.x);
    if (c < 0) { return; }
    a.x = mapX(a.x === undefined ? 0.5 : a.x, c);
    a.y = mapY(a.y === undefined ? 0.5 : a.y, c);
  });
  (layout.shapes || []).forEach(function (s) {
    if ((s.xref || 'x') !== 'paper' || (s.yref || 'y') !== 'paper') { return; }
    var c = column((s.x0 + s.x1) / 2);
    if (c < 0) { return; }
    s.x0 = mapX(s.x0, c); s.x1 = mapX(s.x1, c); s.y0 = mapY(s.y0, c); s.y1 = mapY(s.y1, c);
  });
  data.forEach(function (t) {  /* a colourbar stands beside its own panel */
    var scaled = t.colorbar || ((t.type === 'heatmap' || t.type === 'contour') && t.showscale !== false && !t.coloraxis);
    if (!scaled) { return; }
    var c = Math.max(0, panels.map(function (p) { return 'x' + p.x.slice(5); }).indexOf(t.xaxis || 'x'));
    var s = slot(c);
    t.colorbar = Object.assign(t.colorbar || {}, {x: 1.02, xanchor: 'left', y: (s[0] + s[1]) / 2, yanchor: 'middle',
                                                   len: s[1] - s[0], lenmode: 'fraction'});
  });
  if (legendPx) {
    layout.legend = Object.assign(layout.legend || {}, {orientation: 'v', x: 0, xanchor: 'left',
                                                        y: (legendPx - 60) / plotPx, yanchor: 'top'});
  }
  var title = layout.title && typeof layout.title === 'object' ? layout.title : {text: layout.title || ''};
  var lines = linattnWrap(title.text, Math.max(20, Math.floor((width - 20) / 8.5)));
  title.text = lines.join('<br>');
  title.x = 0; title.xanchor = 'left'; title.y = 0.995; title.yanchor = 'top'; title.yref = 'container';
  layout.title = title;
  var margin = layout.margin || {};
  margin.t = 30 + 22 * lines.length;
  margin.l = Math.min(margin.l === undefined ? 60 : margin.l, 60);
  margin.r = data.some(function (t) { return t.colorbar; }) ? 80 : Math.min(margin.r === undefined ? 20 : margin.r, 20);
  margin.b = Math.max(margin.b || 0, 40);
  layout.margin = margin;
  layout.height = plotPx + margin.t + margin.b;
  layout.width = undefined;
  layout.autosize = true;
  return {data: data, layout: layout, frames: []};
}

/* On a phone the article's sidebar button opens the theme's sidebar drawer (the header's own button,
   which opens it, is hidden at that width). */
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('.bd-header-article .primary-toggle').forEach(function (button) {
    button.addEventListener('click', function () {
      var side = document.querySelector('.bd-sidebar-primary');
      var drawer = document.querySelector('.pst-navbar-icon.primary-toggle');
      if (side && drawer && side.getBoundingClientRect().right <= 0) { drawer.click(); }
    });
  });
});
