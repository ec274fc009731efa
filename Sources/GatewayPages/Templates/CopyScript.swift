/// The one script of the settings pages, served at `<prefix>/static/copy.js` and allowed
/// (`script-src 'self'`) on the show-once page only: it reveals the Copy button and copies
/// the key. The page works without it (the key sits in a selectable read-only field).
/// Immutable.
package enum CopyScript {
    package static let text = """
        "use strict";
        document.addEventListener("DOMContentLoaded", function () {
          var button = document.getElementById("copy-key");
          var field = document.getElementById("api-key");
          var status = document.getElementById("copy-status");
          if (!button || !field) { return; }
          button.hidden = false;
          button.addEventListener("click", function () {
            field.focus();
            field.select();
            var done = function () { button.textContent = "Copied"; if (status) { status.textContent = "The key is on the clipboard."; } };
            var fallback = function () { try { document.execCommand("copy"); done(); } catch (e) { if (status) { status.textContent = "Select the key and copy it."; } } };
            if (navigator.clipboard && navigator.clipboard.writeText) {
              navigator.clipboard.writeText(field.value).then(done, fallback);
            } else {
              fallback();
            }
          });
        });

        """
}
