/* Readable colours for any accent colour (WCAG 2.1: relative luminance, contrast ratio).
 * The server inlines this file into widget.js (the launcher) and widget-app.js (the
 * widget page) where they say CONTRAST in a comment: one copy of the arithmetic for both. */
var faqbotContrast = (function () {
  "use strict";
  var MIN_RATIO = 4.5; // WCAG 1.4.3 (AA) for ordinary text
  var WHITE = [255, 255, 255];
  var CANDIDATES = [WHITE, [27, 36, 48], [0, 0, 0]]; // white, the widget's text colour, black

  // Any CSS colour (hex, name, rgb()) as [r, g, b]; alpha is dropped. null if not a colour.
  function parse(color) {
    var canvas = document.createElement("canvas");
    var ctx = canvas.getContext && canvas.getContext("2d");
    if (!ctx) return null;
    // A canvas ignores an invalid colour: two different starting values tell it apart.
    ctx.fillStyle = "#000001";
    ctx.fillStyle = color;
    var first = ctx.fillStyle;
    ctx.fillStyle = "#000002";
    ctx.fillStyle = color;
    if (ctx.fillStyle !== first) return null;
    var m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(first);
    if (m) return [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)];
    m = /^rgba?\(\s*(\d+),\s*(\d+),\s*(\d+)/.exec(first);
    return m ? [+m[1], +m[2], +m[3]] : null;
  }

  function luminance(rgb) {
    var s = rgb.map(function (v) {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * s[0] + 0.7152 * s[1] + 0.0722 * s[2];
  }

  function ratio(a, b) {
    var la = luminance(a);
    var lb = luminance(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }

  function hex(rgb) {
    return "#" + rgb.map(function (v) { return (v < 16 ? "0" : "") + v.toString(16); }).join("");
  }

  // Text on an accent background: white if it reads, else dark. When white is under 4.5:1
  // the background is light enough for black to reach at least 4.58:1, so one always fits.
  function textOn(bg) {
    for (var i = 0; i < CANDIDATES.length; i++) {
      if (ratio(CANDIDATES[i], bg) >= MIN_RATIO) return CANDIDATES[i];
    }
    return ratio(WHITE, bg) >= ratio([0, 0, 0], bg) ? WHITE : [0, 0, 0];
  }

  // The accent used as text (links, chips) on a light background: darkened, same hue, until it reads.
  function inkOn(accent, bg) {
    var c = accent.slice();
    for (var i = 0; i < 60 && ratio(c, bg) < MIN_RATIO; i++) {
      c = c.map(function (v) { return Math.floor(v * 0.9); });
    }
    return c;
  }

  /* {accent, onAccent, ink} as #rrggbb for `color` (null if it is not a colour):
   * onAccent is the text colour on the accent, ink the accent as text on `light`. */
  function palette(color, light) {
    var accent = parse(color);
    if (!accent) return null;
    return {
      accent: hex(accent),
      onAccent: hex(textOn(accent)),
      ink: hex(inkOn(accent, parse(light || "#ffffff") || WHITE))
    };
  }

  return { parse: parse, ratio: ratio, palette: palette, MIN_RATIO: MIN_RATIO };
})();
