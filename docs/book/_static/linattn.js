/* Draw a stored plotly figure (and its frames: the kernel-free explorers' slider positions). */
window.linattnPlot = function (id, fig) {
  var draw = function () {
    var config = {responsive: true, displaylogo: false};
    Plotly.newPlot(id, fig.data, fig.layout, config).then(function (gd) {
      if (fig.frames && fig.frames.length) { return Plotly.addFrames(gd, fig.frames); }
    });
  };
  if (window.Plotly) { draw(); } else { window.addEventListener('DOMContentLoaded', draw); }
};

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
