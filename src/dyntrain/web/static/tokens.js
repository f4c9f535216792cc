// Tokens page: create (the secret is shown once) and revoke, through /api/v1/tokens.
"use strict";
(function () {
  const { api, q, qa, showMsg, errorText, toast } = window.dyntrain;
  const form = q("#create-token");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = q(".form-msg", form);
    const name = q("#token-name").value.trim();
    if (!name) { showMsg(msg, "Give the token a name: who or what will use it.", "error"); return; }
    const projects = qa('input[name="projects"]:checked', form).map((el) => el.value);
    try {
      const t = await api("POST", "/tokens", { name, role: q("#token-role").value, projects });
      q("#new-token-secret").textContent = t.token;
      q("#new-token").hidden = false;
      showMsg(msg, `Token "${t.name}" created.`, "ok");
      addRow(t);
      form.reset();
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    }
  });
  // The new token joins the list at once, with its Revoke button (no reload needed).
  function addRow(t) {
    const tr = document.createElement("tr");
    tr.dataset.token = t.id;
    const cells = [t.name, t.role, t.projects && t.projects.length ? t.projects.join(", ") : "all", "never"];
    cells.forEach((text) => { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); });
    const td = document.createElement("td");
    const btn = document.createElement("button");
    btn.className = "btn danger small";
    btn.dataset.revoke = t.id;
    btn.dataset.name = t.name;
    btn.textContent = "Revoke";
    td.appendChild(btn);
    tr.appendChild(td);
    q("#tokens tbody").prepend(tr);
  }
  // One listener for every Revoke button, including those of tokens created on this page.
  q("#tokens").addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-revoke]");
    if (!btn) return;
    if (!confirm(`Revoke the token "${btn.dataset.name}"? Whatever uses it stops working at once.`)) return;
    try {
      await api("DELETE", `/tokens/${btn.dataset.revoke}`);
      btn.closest("tr").classList.add("muted");
      btn.closest("td").textContent = "revoked";
      toast(`Token "${btn.dataset.name}" revoked.`, "info");
    } catch (e) {
      toast(errorText(e), "error");
    }
  });
})();
