// The README's example, compiled with the tests so it cannot rot (not run: it needs a Trove on :8080).
import { TroveClient, TroveError } from "../src/index.js";
import { WebSocket } from "ws"; // Node 20; omit in browsers and Node 22+

export async function example(playerToken: string): Promise<void> {
  const trove = new TroveClient({ baseUrl: "http://127.0.0.1:8080", token: playerToken, WebSocket });

  const watch = trove.watch(["meadow"], {
    onSnapshot: (zone, view, { reason }) => console.log(`${zone}: ${view.remaining} left (${reason})`),
    onEvent: (e, view) => e.type === "chest_opened" && console.log(`${e.player} opened #${e.chest_id}; ${view?.remaining} left`),
  });
  await watch.ready;

  try {
    const { claim, outcome } = await trove.claim("meadow"); // one idempotency key, reused on every retry
    console.log(outcome, claim.chest_id, claim.loot); // "opened" (201) or "replayed" (200)
  } catch (e) {
    if (e instanceof TroveError && e.error === "zone_exhausted") console.log("no chest left");
    else throw e;
  }
  watch.close();
}
