// Projects list: create a project; keep the status cards fresh.
"use strict";

(function () {
  const { api, q, showMsg, errorText, refreshFragment } = window.dyntrain;
  const form = q("#create-project");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = q(".form-msg", form);
    const name = form.elements.name.value.trim();
    if (!name) { showMsg(msg, "Give the project a name.", "error"); form.elements.name.focus(); return; }
    try {
      const body = { name, description: form.elements.description.value.trim() };
      if (form.elements.task) body.task = form.elements.task.value;
      await api("POST", "/projects", body);
      location.href = `/projects/${encodeURIComponent(name)}`;
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    }
  });
  // The list has no event stream of its own: poll its fragment while the tab is visible.
  const list = q("#projects");
  setInterval(() => { if (!document.hidden) refreshFragment(list, 0); }, 5000);
})();
