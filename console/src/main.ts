/** The console's shell: the login gate, the top bar, and one page per hash route. */
import { h, fill } from "./dom.js";
import { current, go, href } from "./router.js";
import { forgetToken, identity, isAdmin, token } from "./session.js";
import { notice, type PageContext } from "./ui.js";
import { loginPage } from "./pages/login.js";
import { zonesPage } from "./pages/zones.js";
import { zonePage } from "./pages/zone.js";
import { shardsPage } from "./pages/shards.js";
import { tablesPage, tablePage } from "./pages/tables.js";
import { leaderboardsPage } from "./pages/leaderboards.js";
import { verifyPage } from "./pages/verify.js";

type Page = (ctx: PageContext, params: string[]) => HTMLElement;

interface Section {
  key: string;
  label: string;
  admin: boolean;
  page: Page;
  /** The page for `#/key/<name>`. */
  detail?: Page;
}

const SECTIONS: Section[] = [
  { key: "zones", label: "Zones", admin: true, page: zonesPage, detail: zonePage },
  { key: "shards", label: "Shards", admin: true, page: shardsPage },
  { key: "tables", label: "Loot tables", admin: true, page: tablesPage, detail: tablePage },
  { key: "leaderboards", label: "Leaderboards", admin: false, page: leaderboardsPage },
  { key: "verify", label: "Verify a draw", admin: false, page: verifyPage },
];

const app = document.getElementById("app")!;
let leaving: (() => void)[] = [];
/** Where to go after logging in (the route asked for while logged out). */
let afterLogin: string | null = null;

function leave(): void {
  for (const f of leaving) {
    try {
      f();
    } catch (e) {
      console.warn(e);
    }
  }
  leaving = [];
}

function defaultRoute(): string {
  return isAdmin() ? href("zones") : href("verify");
}

function render(): void {
  leave();
  const route = current();
  const controller = new AbortController();
  leaving.push(() => controller.abort(new Error("page left")));
  const ctx: PageContext = { signal: controller.signal, onLeave: (f) => leaving.push(f), query: route.query };
  const who = identity();
  const [key, ...rest] = route.path;

  if (!token() || !who || key === "login") {
    if (key && key !== "login") afterLogin = location.hash;
    if (key !== "login") {
      history.replaceState(null, "", href("login"));
    }
    document.title = "Log in · Trove console";
    fill(app, loginPage(ctx, () => {
      const to = afterLogin ?? defaultRoute();
      afterLogin = null;
      go(to);
    }));
    return;
  }

  const section = SECTIONS.find((s) => s.key === key);
  if (!section) {
    history.replaceState(null, "", defaultRoute());
    render();
    return;
  }
  document.title = `${section.label} · Trove console`;
  let body: HTMLElement;
  if (section.admin && !isAdmin()) {
    body = notice(
      "warn",
      h("strong", null, `${section.label} needs an admin token`),
      h("p", null, `You are logged in as ${who.sub} with a ${who.role} token. `, h("a", { href: href("verify") }, "Verify a draw"), " works with any token."),
    );
  } else {
    const page = rest.length && section.detail ? section.detail : section.page;
    body = page(ctx, rest);
  }
  fill(app, shell(section.key, who.sub, who.role), h("main.content", { id: "content" }, body));
}

function shell(active: string, sub: string, role: string): HTMLElement {
  const admin = role === "admin";
  return h(
    "header.topbar",
    null,
    h("a.brand", { href: defaultRoute() }, h("span.brand-mark", { "aria-hidden": "true" }), "Trove", h("span.brand-sub", null, "console")),
    h(
      "nav.mainnav",
      null,
      SECTIONS.filter((s) => admin || !s.admin).map((s) =>
        h(`a${s.key === active ? ".active" : ""}` as "a", { href: href(s.key), "aria-current": s.key === active ? "page" : undefined }, s.label),
      ),
    ),
    h(
      "div.whoami",
      null,
      h("span.who", { title: `signed in as ${sub}` }, sub),
      h(`span.role.role-${admin ? "admin" : "player"}` as "span", null, admin ? "admin" : role),
      h(
        "button.btn.btn-ghost.logout",
        {
          type: "button",
          onclick: () => {
            forgetToken();
            afterLogin = null;
            go(href("login"));
          },
        },
        "Log out",
      ),
    ),
  );
}

window.addEventListener("hashchange", render);
render();
