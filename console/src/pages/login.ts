/** Paste a token; it is checked with Trove, then kept in this tab's sessionStorage only. */
import { h, fill } from "../dom.js";
import { decode, forgetToken, saveToken, trove } from "../session.js";
import { errorBox, form, notice, type PageContext } from "../ui.js";

export function loginPage(ctx: PageContext, done: () => void): HTMLElement {
  const input = h("textarea.token-input", {
    id: "token",
    name: "token",
    rows: 4,
    spellcheck: "false",
    autocomplete: "off",
    placeholder: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.…",
    "aria-label": "Token",
  });
  const out = h("div.login-out", { "aria-live": "polite" });
  const button = h("button.btn.btn-primary.btn-wide", { type: "submit", id: "login" }, "Log in");

  const submit = async () => {
    const t = input.value.trim().replace(/^bearer\s+/i, "");
    fill(out);
    const who = decode(t);
    if (!who) {
      fill(out, notice("bad", h("strong", null, "That is not a Trove token"), h("p", null, "A token is a JWT: three parts separated by dots, as `trove token` prints it.")));
      return;
    }
    if (who.exp !== null && who.exp * 1000 < Date.now()) {
      fill(out, notice("bad", h("strong", null, "This token has expired"), h("p", null, `It expired on ${new Date(who.exp * 1000).toLocaleString()}. Make a new one with trove token.`)));
      return;
    }
    button.disabled = true;
    button.textContent = "Checking…";
    saveToken(t);
    try {
      // Any token may read its own player's history: a cheap check that Trove accepts it.
      await trove.history(who.sub, { limit: 1, signal: ctx.signal });
      input.value = "";
      done();
    } catch (e) {
      forgetToken();
      fill(out, errorBox(e, { atLogin: true }));
    } finally {
      button.disabled = false;
      button.textContent = "Log in";
    }
  };

  return h(
    "div.login",
    null,
    h(
      "div.login-card",
      null,
      h("div.login-brand", null, h("span.brand-mark", { "aria-hidden": "true" }), h("span", null, "Trove"), h("span.brand-sub", null, "console")),
      h("p.login-lead", null, "Paste a token to log in. An admin token opens the operator pages; a player token lets you verify your own draws."),
      form("login-form", () => void submit(), h("label.field-label", { for: "token" }, "Token"), input, button),
      out,
      h(
        "p.login-help",
        null,
        "Print one with ",
        h("code", null, "trove token --player you --admin"),
        " (the local stack prints an admin and a player token when it starts). The token stays in this browser tab only and is sent to this Trove with each request.",
      ),
    ),
  );
}
