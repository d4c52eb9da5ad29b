// Example image policy in JavaScript: refuse images that are not pinned.
//
// The same decisions, with the same messages, as the Rust example beside it
// (../deny-latest/src/lib.rs): kubeop asks the `image-policy` plugin about every image an app is
// created or updated with. This one applies the platform's image allowlist, like the built-in
// policy, and also refuses images that would pull whatever `latest` points to today:
//
// - `nginx:latest` (tagged `latest`), and
// - `nginx` (neither a tag nor a digest, which pulls `latest` too).
//
// `nginx:1.27` and `nginx@sha256:…` are fine.
//
// Build it with `./build.sh` (it runs componentize-js, which embeds this file in a JavaScript
// engine compiled to WebAssembly). The result is a component like any other: check it with
// `kubeop plugin check` and upload it to the image-policy slot.
//
// Plugins are pure functions of their request: the host gives them no files, network or
// environment, and stops a call that runs too long or uses too much memory. Keep the module's
// top level free of work: componentize-js runs it once at build time and snapshots the result,
// so every call starts from that snapshot.

// The one function the host offers (`interface host` in wit/plugin.wit). componentize-js names
// an import by its WIT interface with the package's version; an enum case is its WIT name as a
// string ("info", "warn", …).
import { log } from "kubeop:plugin/host@0.1.1";

// The export of the `image-policy` world: `check-image: func(request: image-request) -> decision`.
//
// How WIT values look in JavaScript (componentize-js uses jco's mapping):
// - names are camelCase: `check-image` is `checkImage`, `image-allowlist` is `imageAllowlist`;
// - a record is a plain object, a `list<string>` an array of strings;
// - an `option<string>` is the string, or `undefined` when absent (test with `== null`, never
//   with `!value`: an empty tag "" is present);
// - a variant is `{ tag: "case" }`, or `{ tag: "case", val: payload }` when the case carries one.
export function checkImage(request) {
  const decision = decide(request);
  // Logging is allowed but should be rare: the host keeps at most 64 lines per call.
  if (decision.tag === "deny") {
    log("info", `denied ${request.image}: ${decision.val}`);
  }
  return decision;
}

const allow = () => ({ tag: "allow" });
const deny = (reason) => ({ tag: "deny", val: reason });

// The policy itself. `request.reference` is already parsed for us: `tag` and `digest` are exactly
// as the user wrote them, absent when not written.
function decide(request) {
  const image = request.image;
  const reference = request.reference;
  const allowlist = request.policy.imageAllowlist;

  // 1. The platform allowlist: empty means every registry is allowed.
  if (allowlist.length > 0 && !allowlist.some((entry) => sameRegistry(reference.registry, entry))) {
    return deny(`registry ${reference.registry} is not in the image allowlist (${allowlist.join(", ")})`);
  }

  // 2. The image must be pinned. Tags are case-sensitive: `Latest` is a tag like any other.
  if (reference.tag === "latest") {
    return deny(`image ${image} uses the tag latest, which changes under you: pin a version tag or a digest`);
  }
  if (reference.tag == null && reference.digest == null) {
    return deny(
      `image ${image} has neither a tag nor a digest, so it pulls latest: pin a version tag or a digest`,
    );
  }
  return allow();
}

// Whether a registry (`host` or `host:port`) matches an allowlist entry: the host without regard
// to ASCII case, the port exactly (`localhost:5000` is not `localhost`).
function sameRegistry(registry, entry) {
  const [host, port] = splitPort(registry);
  const [entryHost, entryPort] = splitPort(trimWhiteSpace(entry));
  return asciiLowercase(host) === asciiLowercase(entryHost) && port === entryPort;
}

// Splits `host:port` into [host, port or null]; an IPv6 literal keeps its brackets (`[::1]:5000`).
function splitPort(registry) {
  let hostEnd;
  if (registry.startsWith("[")) {
    const close = registry.indexOf("]");
    hostEnd = close === -1 ? registry.length : close + 1;
  } else {
    const colon = registry.indexOf(":");
    hostEnd = colon === -1 ? registry.length : colon;
  }
  const rest = registry.slice(hostEnd);
  return [registry.slice(0, hostEnd), rest.startsWith(":") ? rest.slice(1) : null];
}

// Rust's `str::trim`, which strips Unicode White_Space: JavaScript's own `trim` would also strip
// U+FEFF and keep U+0085.
const WHITE_SPACE = "[\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";
const EDGE_WHITE_SPACE = new RegExp(`^${WHITE_SPACE}+|${WHITE_SPACE}+$`, "g");
function trimWhiteSpace(text) {
  return text.replace(EDGE_WHITE_SPACE, "");
}

// Only A-Z: `toLowerCase` would also fold non-ASCII letters, which registry names compare exactly.
function asciiLowercase(text) {
  return text.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
}
