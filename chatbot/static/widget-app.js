/* faqbot widget: the compact chat page served at /widget (usually inside an iframe).
 * Talks to the JSON API next to it (api/chat, api/feedback). Everything is built
 * with DOM nodes and textContent: nothing the user types, and nothing the bot
 * says, is ever parsed as HTML. */
(function () {
  "use strict";
  /*{{CONTRAST}}*/

  var T = JSON.parse(document.getElementById("faqbot-texts").textContent);
  var params = new URLSearchParams(window.location.search);
  var embedded = params.get("embedded") === "1";
  var sessionId = null;
  var busy = false;

  var $ = function (id) { return document.getElementById(id); };
  var log = $("fb-log");
  var form = $("fb-form");
  var input = $("fb-input");
  var send = $("fb-send");
  var counter = $("fb-counter");
  var coarse = window.matchMedia("(pointer: coarse)").matches; // a touch screen: no surprise keyboard

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  /* ------------------------------------------------------------ safe markdown subset */

  function safeUrl(url) {
    try {
      var u = new URL(url);
      return (u.protocol === "https:" || u.protocol === "http:") ? u.href : null;
    } catch (e) { return null; }
  }

  function link(href, label) {
    var a = el("a", null, label);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  // Bold, italics, code, [links](https://…) and bare URLs; everything else is text.
  var INLINE = /(\*\*|__)(?=\S)([\s\S]+?)\1|(^|[^\w*])([*_])(?![*_\s])([\s\S]*?\S)\4(?!\w)|`([^`]+)`|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)|(https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"»_*])/g;

  function inline(parent, text) {
    var re = new RegExp(INLINE.source, "g"); // own lastIndex: inline() recurses
    var last = 0;
    var m;
    while ((m = re.exec(text)) !== null) {
      var start = m.index;
      if (m[3] !== undefined && m[4] !== undefined) {
        start += m[3].length; // the character before an emphasis stays text
      }
      if (start > last) parent.appendChild(document.createTextNode(text.slice(last, start)));
      if (m[1]) {
        var b = el("strong");
        inline(b, m[2]);
        parent.appendChild(b);
      } else if (m[4]) {
        var i = el("em");
        inline(i, m[5]);
        parent.appendChild(i);
      } else if (m[6] !== undefined) {
        parent.appendChild(el("code", null, m[6]));
      } else if (m[7] !== undefined) {
        var href = safeUrl(m[8]);
        parent.appendChild(href ? link(href, m[7]) : document.createTextNode(m[7]));
      } else if (m[9] !== undefined) {
        var url = safeUrl(m[9]);
        parent.appendChild(url ? link(url, m[9]) : document.createTextNode(m[9]));
      }
      last = re.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  var ITEM = /^(\s*)(?:[-*+]|(\d+)[.)])\s+(.*)$/;

  function markdown(text) {
    var root = el("div", "fb-md");
    var lines = text.replace(/\r\n?/g, "\n").split("\n");
    var para = null;
    var stack = []; // open lists: {indent, node, item}
    function closeLists() { stack = []; }
    for (var n = 0; n < lines.length; n++) {
      var line = lines[n];
      if (!line.trim()) { para = null; continue; }
      var m = ITEM.exec(line);
      if (m) {
        para = null;
        var indent = m[1].replace(/\t/g, "    ").length;
        while (stack.length && indent < stack[stack.length - 1].indent) stack.pop();
        var top = stack[stack.length - 1];
        if (!top || indent > top.indent) {
          var list = el(m[2] ? "ol" : "ul");
          (top && top.item ? top.item : root).appendChild(list);
          top = { indent: indent, node: list, item: null };
          stack.push(top);
        }
        var li = el("li");
        inline(li, m[3]);
        top.node.appendChild(li);
        top.item = li;
        continue;
      }
      var heading = /^#{1,6}\s+(.*)$/.exec(line);
      if (stack.length && /^\s+\S/.test(line) && !heading) {
        // continuation of the current list item
        var item = stack[stack.length - 1].item;
        if (item) { item.appendChild(el("br")); inline(item, line.trim()); continue; }
      }
      closeLists();
      if (heading) {
        para = null;
        var h = el("p", "fb-md-h");
        var strong = el("strong");
        inline(strong, heading[1]);
        h.appendChild(strong);
        root.appendChild(h);
        continue;
      }
      if (para) { para.appendChild(el("br")); } else { para = el("p"); root.appendChild(para); }
      inline(para, line.trim());
    }
    return root;
  }

  /* ------------------------------------------------------------ messages */

  function scrollToEnd(node) {
    if (node && node.offsetHeight > log.clientHeight * 0.8) {
      log.scrollTop = node.offsetTop - log.offsetTop - 8;
    } else {
      log.scrollTop = log.scrollHeight;
    }
  }

  function bubble(role, extraClass) {
    var row = el("div", "fb-row fb-" + role + (extraClass ? " " + extraClass : ""));
    var b = el("div", "fb-bubble");
    var who = el("span", "fb-sr", role === "user" ? T.you + " : " : T.bot + " : ");
    b.appendChild(who);
    row.appendChild(b);
    log.appendChild(row);
    return b;
  }

  function chips(items, cls, onPick) {
    var box = el("div", "fb-chips " + cls);
    items.forEach(function (label) {
      var c = el("button", "fb-chip", label);
      c.type = "button";
      c.addEventListener("click", function () { onPick(label, box, c); });
      box.appendChild(c);
    });
    return box;
  }

  // Keyboard users stay on the question field (focus never falls back to the page body).
  function focusInput() {
    if (!coarse) input.focus();
  }

  function disableChips(box) {
    Array.prototype.forEach.call(box.querySelectorAll("button"), function (b) { b.disabled = true; });
  }

  function disableOldOptions() {
    Array.prototype.forEach.call(log.querySelectorAll(".fb-options"), disableChips);
  }

  // Split a reply text into markdown parts and clickable question lists (after a known header).
  function sections(text) {
    var headers = [T.relatedHeader, T.closestHeader];
    var lines = text.split("\n");
    var out = [];
    var buf = [];
    for (var i = 0; i < lines.length; i++) {
      if (headers.indexOf(lines[i].trim()) >= 0) {
        var qs = [];
        var j = i + 1;
        while (j < lines.length && /^\s*-\s+\S/.test(lines[j])) {
          qs.push(lines[j].replace(/^\s*-\s+/, "").trim());
          j++;
        }
        if (qs.length) {
          if (buf.length) out.push({ md: buf.join("\n") });
          buf = [];
          out.push({ header: lines[i].trim(), questions: qs });
          i = j - 1;
          continue;
        }
      }
      buf.push(lines[i]);
    }
    if (buf.join("").trim()) out.push({ md: buf.join("\n") });
    return out;
  }

  function userMessage(text) {
    var b = bubble("user");
    b.appendChild(el("span", "fb-text", text));
    scrollToEnd();
  }

  function botText(text, extraClass) {
    var b = bubble("bot", extraClass);
    b.appendChild(markdown(text));
    scrollToEnd();
    return b;
  }

  // 👍 / 👎 as SVG: they render even where no emoji font is installed.
  var THUMB_UP = "M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l.95-4.57.03-.32a1.5 1.5 0 0 0-.44-1.06L13.17 1 6.59 7.59A1.98 1.98 0 0 0 6 9v10a2 2 0 0 0 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";
  var THUMB_DOWN = "M22 3h-4v12h4V3zM2 14a2 2 0 0 0 2 2h6.3l-.95 4.57-.03.32c0 .41.17.79.44 1.06L10.83 23l6.58-6.59c.37-.36.59-.86.59-1.41V5a2 2 0 0 0-2-2H7c-.83 0-1.54.5-1.84 1.22L2.14 11.27c-.09.23-.14.47-.14.73v2z";

  function icon(d) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "15");
    svg.setAttribute("height", "15");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var p = document.createElementNS(ns, "path");
    p.setAttribute("fill", "currentColor");
    p.setAttribute("d", d);
    svg.appendChild(p);
    return svg;
  }

  function feedbackRow(entryId) {
    var row = el("div", "fb-feedback");
    row.dataset.entry = entryId;
    row.appendChild(el("span", "fb-feedback-q", T.feedbackQuestion));
    var sid = sessionId;
    function vote(helpful) {
      if (row.contains(document.activeElement)) focusInput(); // the buttons are about to go
      Array.prototype.forEach.call(row.querySelectorAll("button"), function (x) { x.disabled = true; });
      postJson("api/feedback", { session_id: sid, entry_id: entryId, helpful: helpful })
        .then(function (res) {
          row.textContent = "";
          row.appendChild(el("span", "fb-feedback-done", res.ok ? T.feedbackThanks : res.error));
        });
    }
    [[T.feedbackYes, T.feedbackYesLabel, true], [T.feedbackNo, T.feedbackNoLabel, false]].forEach(function (d) {
      var btn = el("button", "fb-vote " + (d[2] ? "fb-vote-yes" : "fb-vote-no"));
      btn.type = "button";
      btn.appendChild(icon(d[2] ? THUMB_UP : THUMB_DOWN));
      btn.appendChild(el("span", null, d[0]));
      btn.setAttribute("aria-label", d[1]);
      btn.title = d[1];
      btn.dataset.helpful = String(d[2]);
      btn.addEventListener("click", function () { vote(d[2]); });
      row.appendChild(btn);
    });
    return row;
  }

  function botReply(reply) {
    var b = bubble("bot", "fb-" + reply.type);
    b.parentNode.dataset.type = reply.type;
    sections(reply.text).forEach(function (s) {
      if (s.md !== undefined) {
        b.appendChild(markdown(s.md));
      } else {
        b.appendChild(el("p", "fb-related-h", s.header));
        b.appendChild(chips(s.questions, "fb-related", function (q) { ask(q); }));
      }
    });
    if (reply.type === "clarify" && reply.options.length) {
      b.appendChild(chips(reply.options, "fb-options", function (o, box, chip) {
        if (busy) return;
        focusInput(); // the chosen chip is about to be disabled
        chip.classList.add("fb-picked");
        disableChips(box);
        ask(o);
      }));
    }
    if (reply.type === "answer" && reply.results.length) {
      b.appendChild(feedbackRow(reply.results[0].id));
    }
    scrollToEnd(b.parentNode);
  }

  function welcome() {
    var b = bubble("bot", "fb-welcome");
    b.appendChild(markdown(T.welcome));
    b.appendChild(el("p", "fb-related-h", T.examplesHeader));
    b.appendChild(chips(T.examples, "fb-examples", function (q) { ask(q); }));
  }

  /* ------------------------------------------------------------ network */

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (resp) {
      return resp.json().then(function (data) {
        if (resp.ok) return { ok: true, data: data };
        return { ok: false, error: (data && typeof data.error === "string") ? data.error : T.internalError };
      }, function () {
        return { ok: false, error: resp.ok ? T.internalError : T.networkError };
      });
    }, function () {
      return { ok: false, error: T.networkError };
    });
  }

  function setBusy(on) {
    busy = on;
    send.disabled = on;
    log.setAttribute("aria-busy", on ? "true" : "false");
  }

  function ask(text) {
    if (busy) return;
    if (!text.trim()) {
      botText(T.emptyMessage, "fb-error");
      return;
    }
    disableOldOptions();
    userMessage(text);
    setBusy(true);
    var typing = bubble("bot", "fb-typing");
    typing.appendChild(el("span", "fb-dots", T.thinking));
    scrollToEnd();
    var started = performance.now();
    postJson("api/chat", sessionId ? { message: text, session_id: sessionId } : { message: text })
      .then(function (res) {
        typing.parentNode.remove();
        if (res.ok) {
          sessionId = res.data.session_id;
          botReply(res.data);
        } else {
          botText(res.error, "fb-error");
        }
        log.dataset.lastMs = String(Math.round(performance.now() - started));
        setBusy(false);
        focusInput();
      });
  }

  function reset() {
    sessionId = null;
    log.textContent = "";
    welcome();
    input.value = "";
    updateCounter();
    focusInput();
  }

  /* ------------------------------------------------------------ input */

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 140) + "px";
  }

  function updateCounter() {
    var left = T.maxChars - input.value.length;
    if (left < 200) {
      counter.hidden = false;
      counter.textContent = T.charsLeft.replace("{left}", String(Math.max(left, 0)));
    } else {
      counter.hidden = true;
      counter.textContent = ""; // the field's aria-describedby would still read a stale count
    }
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value;
    if (busy) return;
    input.value = "";
    autosize();
    updateCounter();
    ask(text);
  });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });
  input.addEventListener("input", function () { autosize(); updateCounter(); });

  /* ------------------------------------------------------------ setup */

  var title = (params.get("title") || "").trim().slice(0, 80) || T.title;
  $("fb-title").textContent = title;
  document.title = title;
  var color = (params.get("color") || "").trim();
  var colors = (/^#[0-9a-fA-F]{3,8}$/.test(color) || /^[a-zA-Z]{3,20}$/.test(color))
    ? faqbotContrast.palette(color, "#f5f7fa") // the darkest light background the accent is text on
    : null;
  if (colors) {
    var rootStyle = document.documentElement.style;
    rootStyle.setProperty("--fb-accent", colors.accent);
    rootStyle.setProperty("--fb-on-accent", colors.onAccent);
    rootStyle.setProperty("--fb-ink", colors.ink);
  }
  input.placeholder = T.placeholder;
  input.maxLength = T.maxChars;
  $("fb-input-label").textContent = T.placeholder;
  $("fb-send-label").textContent = T.send;
  send.title = T.send;
  $("fb-reset-label").textContent = T.newConversation;
  $("fb-reset").title = T.newConversation;
  $("fb-footer").textContent = T.footer;
  log.setAttribute("aria-label", T.conversation);
  var close = $("fb-close");
  close.setAttribute("aria-label", T.close);
  close.title = T.close;
  if (embedded) {
    close.hidden = false;
    document.documentElement.classList.add("fb-embedded");
    var closePanel = function () { window.parent.postMessage({ type: "faqbot:close" }, "*"); };
    close.addEventListener("click", closePanel);
    // Escape closes the panel from anywhere inside it (the page gets its focus back on the launcher).
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && !ev.isComposing) closePanel();
    });
    // The launcher asks for the focus when it opens the panel (it cannot reach into this frame).
    window.addEventListener("message", function (ev) {
      if (ev.source === window.parent && ev.data && ev.data.type === "faqbot:focus") input.focus();
    });
  }
  $("fb-reset").addEventListener("click", reset);
  welcome();
  // The launcher waits for this: without it, the page was not allowed to frame the widget.
  if (embedded) window.parent.postMessage({ type: "faqbot:ready" }, "*");
})();
