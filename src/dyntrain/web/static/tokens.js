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
      form.reset();
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    }
  });
  qa("[data-revoke]").forEach((btn) => btn.addEventListener("click", async () => {
    if (!confirm(`Revoke the token "${btn.dataset.name}"? Whatever uses it stops working at once.`)) return;
    try {
      await api("DELETE", `/tokens/${btn.dataset.revoke}`);
      btn.closest("td").textContent = "revoked";
      toast(`Token "${btn.dataset.name}" revoked.`, "info");
    } catch (e) {
      toast(errorText(e), "error");
    }
  }));
})();
