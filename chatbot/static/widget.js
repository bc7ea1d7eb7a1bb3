/* faqbot loader: <script src="https://SERVEUR/widget.js" defer></script>
 * adds a floating chat button that opens the assistant (/widget) in an iframe.
 * Options (data- attributes on the script tag):
 *   data-title="…"            title of the chat panel and of the button
 *   data-position="right|left" corner of the button (default right)
 *   data-color="#0a4da2"      accent colour (hex or a CSS colour name); the text on it is
 *                             white or dark, whichever reads (contrast >= 4.5:1, WCAG AA)
 *   data-open="true"          open the panel when the page loads
 * The widget is served by the same origin as this script, so it needs no CORS. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__faqbotWidget) return;
  window.__faqbotWidget = true;

  /*{{CONTRAST}}*/
  var TEXTS = /*{{TEXTS}}*/{};
  var base = new URL(".", script.src);
  var data = script.dataset;
  var title = (data.title || TEXTS.title || "").slice(0, 80);
  // The launcher's name: the page's own title when it gives one (data-title), else ours.
  var openLabel = data.title ? title : TEXTS.open || title;
  var left = data.position === "left";
  var color = (data.color || "").trim();
  if (!(/^#[0-9a-fA-F]{3,8}$/.test(color) || /^[a-zA-Z]{3,20}$/.test(color))) color = "#0a4da2";
  var colors = faqbotContrast.palette(color) || faqbotContrast.palette("#0a4da2");

  var CSS = [
    ":host { all: initial; }",
    ".fab { position: fixed; bottom: 20px; SIDE: 20px; z-index: 2147483646; width: 58px; height: 58px;",
    "  border-radius: 50%; border: 0; cursor: pointer; background: ACCENT; color: INK_ON_FILL;",
    "  box-shadow: 0 6px 20px rgba(0,0,0,.25); display: grid; place-items: center; transition: transform .15s; }",
    ".fab:hover { transform: scale(1.06); }",
    // A white ring inside a dark one: visible on any page and around any accent colour.
    ".fab:focus-visible { outline: 3px solid #1b2430; outline-offset: 2px;",
    "  box-shadow: 0 0 0 2px #fff, 0 6px 20px rgba(0,0,0,.25); }",
    "@media (prefers-reduced-motion: reduce) { .fab { transition: none; } .fab:hover { transform: none; } }",
    ".fab svg { width: 28px; height: 28px; }",
    ".panel { position: fixed; bottom: 90px; SIDE: 20px; z-index: 2147483647;",
    "  width: min(400px, calc(100vw - 32px)); height: min(640px, calc(100vh - 120px));",
    "  border-radius: 16px; overflow: hidden; background: #fff;",
    "  box-shadow: 0 12px 40px rgba(0,0,0,.28); display: none; }",
    ".panel.open { display: block; }",
    ".panel iframe { border: 0; width: 100%; height: 100%; display: block; }",
    ".blocked { padding: 24px; font: 15px/1.5 system-ui, sans-serif; color: #1b1b1b; }",
    ".blocked p { margin: 0 0 16px; }",
    ".blocked-close { font: inherit; padding: 8px 16px; border-radius: 8px; border: 0; cursor: pointer;",
    "  background: ACCENT; color: INK_ON_FILL; }",
    "@media (max-width: 480px) { .panel { inset: 0; width: 100%; height: 100%; border-radius: 0; }",
    "  .open ~ .fab, .fab.hidden { display: none; } }"
  ].join("\n").replace(/SIDE/g, left ? "left" : "right").replace(/ACCENT/g, colors.accent)
    .replace(/INK_ON_FILL/g, colors.onAccent);

  var host = document.createElement("div");
  host.id = "faqbot-widget";
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS); // not subject to the host page's style-src 'unsafe-inline'
    root.adoptedStyleSheets = [sheet];
  } else {
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }

  var panel = document.createElement("div");
  panel.className = "panel";
  panel.id = "faqbot-panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", title);
  var fab = document.createElement("button");
  fab.className = "fab";
  fab.type = "button";
  fab.setAttribute("aria-expanded", "false");
  fab.setAttribute("aria-controls", panel.id);
  fab.setAttribute("aria-label", openLabel);
  fab.title = openLabel;
  var ICON_CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z";
  var ICON_CLOSE = "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z";
  var svgNS = "http://www.w3.org/2000/svg";
  var svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  var path = document.createElementNS(svgNS, "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute("d", ICON_CHAT);
  svg.appendChild(path);
  fab.appendChild(svg);
  root.appendChild(panel);
  root.appendChild(fab);

  var iframe = null;
  var ready = false; // the widget page said it runs (faqbot:ready)
  // The browser shows a blank or broken frame when the server refuses to be framed by this page
  // (FAQBOT_FRAME_ANCESTORS) or does not answer: say so, and what to do, in the panel.
  function notReady() {
    if (ready || !iframe || panel.querySelector(".blocked")) return;
    var note = document.createElement("div");
    note.className = "blocked";
    note.setAttribute("role", "alert");
    var text = document.createElement("p");
    text.textContent = (TEXTS.blocked || "").replace("{origin}", window.location.origin);
    // The frame's own close button is hidden with it (and, on a phone, the launcher too).
    var closeButton = document.createElement("button");
    closeButton.type = "button";
    closeButton.className = "blocked-close";
    closeButton.textContent = TEXTS.close || "Fermer";
    closeButton.addEventListener("click", function () { close(); });
    note.appendChild(text);
    note.appendChild(closeButton);
    iframe.style.display = "none";
    panel.appendChild(note);
  }
  function widgetUrl() {
    var u = new URL("widget", base);
    u.searchParams.set("embedded", "1");
    if (data.title) u.searchParams.set("title", title);
    if (data.color) u.searchParams.set("color", colors.accent);
    return u.href;
  }
  // Opening moves the keyboard focus to the question field, inside the (cross-origin) iframe.
  function focusWidget() {
    if (iframe && iframe.contentWindow) iframe.contentWindow.postMessage({ type: "faqbot:focus" }, base.origin);
  }
  function open(moveFocus) {
    var first = !iframe;
    if (first) {
      iframe = document.createElement("iframe");
      iframe.src = widgetUrl();
      iframe.title = title;
      iframe.setAttribute("allow", "clipboard-write");
      iframe.setAttribute("referrerpolicy", "strict-origin-when-cross-origin");
      if (moveFocus !== false) iframe.addEventListener("load", focusWidget, { once: true });
      iframe.addEventListener("load", function () { setTimeout(notReady, 2000); }, { once: true });
      setTimeout(notReady, 15000); // a server that never answers fires no load event
      panel.appendChild(iframe);
    }
    panel.classList.add("open");
    fab.classList.add("hidden");
    fab.setAttribute("aria-expanded", "true");
    fab.setAttribute("aria-label", TEXTS.close || "Fermer");
    path.setAttribute("d", ICON_CLOSE);
    if (moveFocus === false) return; // data-open: the page keeps its focus
    iframe.focus();
    if (!first) focusWidget();
  }
  function close() {
    panel.classList.remove("open");
    fab.classList.remove("hidden");
    fab.setAttribute("aria-expanded", "false");
    fab.setAttribute("aria-label", openLabel);
    path.setAttribute("d", ICON_CHAT);
    fab.focus();
  }
  fab.addEventListener("click", function () {
    panel.classList.contains("open") ? close() : open();
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && panel.classList.contains("open")) close();
  });
  window.addEventListener("message", function (ev) {
    if (!iframe || ev.source !== iframe.contentWindow) return;
    // (Ready carries nothing: its source is enough, whatever origin the frame ended on.)
    if (ev.data && ev.data.type === "faqbot:ready") {
      ready = true;
      var late = panel.querySelector(".blocked"); // came up after all (a slow server)
      if (late) { late.remove(); iframe.style.display = ""; }
    }
    if (ev.origin !== base.origin) return;
    if (ev.data && ev.data.type === "faqbot:close") close();
  });

  function mount() {
    document.body.appendChild(host);
    if (data.open === "true") open(false);
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
  window.faqbotWidget = { open: open, close: close };
})();
