// Keyboard shortcuts of the story list and the admin remove button.  Served from the site itself, so the
// pages' CSP (scripts from 'self' only) lets it run with no inline code.
(function () {
  "use strict";

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#stories tbody tr[data-story]"));
  }

  // j/k: the current row gets a visible mark and its link the focus, so Enter opens the story.
  function move(step) {
    var all = rows();
    if (!all.length) return;
    var at = all.findIndex(function (tr) { return tr.classList.contains("current"); });
    if (at < 0) at = all.findIndex(function (tr) { return tr.contains(document.activeElement); });
    var next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    all.forEach(function (tr) { tr.classList.remove("current"); });
    var tr = all[next];
    tr.classList.add("current");
    var link = tr.querySelector("a");
    if (link) link.focus();
    tr.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.key === "/") {
      var search = document.querySelector('input[type="search"]');
      if (search) { e.preventDefault(); search.focus(); search.select(); }
    } else if ((e.key === "j" || e.key === "k") && document.getElementById("stories")) {
      e.preventDefault();
      move(e.key === "j" ? 1 : -1);
    }
  });

  // The story page's similarity column, when the server had not computed it yet: asked for apart, so the
  // page itself never waits for one alignment per variant.
  var variants = document.querySelector("table.variants[data-similarity]");
  if (variants) {
    fetch(variants.dataset.similarity)
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        variants.querySelectorAll("td.similarity span[data-variant]").forEach(function (span) {
          var id = span.dataset.variant;
          var share = data.similarity[id];
          if (share === undefined) { span.textContent = "–"; return; }
          var a = document.createElement("a");
          a.href = "/compare?story=" + encodeURIComponent(data.story) + "&a=" + encodeURIComponent(data.most_complete) +
            "&b=" + encodeURIComponent(id);
          a.title = "compare with the most complete version";
          a.textContent = Math.round(share * 100) + "%";
          span.replaceWith(a);
        });
        variants.dataset.filled = "true";
      })
      .catch(function () {});
  }

  // Remove an article (DELETE /api/article) with the token typed in; the server decides, the page only says.
  var kill = document.getElementById("kill");
  if (kill) {
    kill.addEventListener("submit", function (e) {
      e.preventDefault();
      var status = document.getElementById("kill-status");
      var token = kill.elements.token.value.trim();
      var headers = token ? { "Authorization": "Bearer " + token } : {};
      status.textContent = "Removing…";
      fetch("/api/article?id=" + encodeURIComponent(kill.dataset.article), { method: "DELETE", headers: headers })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
        })
        .then(function (got) {
          if (!got.ok) {
            var detail = typeof got.body.detail === "string" ? got.body.detail : "the server answered " + got.status;
            status.textContent = "Not removed (" + got.status + "): " + detail + ".";
            return;
          }
          var left = got.body.stories || [];
          status.textContent = "Removed. Opening " + (left.length ? "what is left of its story" : "the story list") + "…";
          window.location.assign(left.length ? "/story?id=" + encodeURIComponent(left[0]) : "/");
        })
        .catch(function () { status.textContent = "Not removed: the dashboard cannot be reached; try again."; });
    });
  }
})();
