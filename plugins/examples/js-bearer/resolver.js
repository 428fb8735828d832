// An Orca identity resolver that maps bearer tokens to users.
//
// Built with componentize-js for the world `http-resolver` of `orca:identity@0.1.0`; see
// README.md beside this file for the settings and the verdicts. The parsed settings are per
// instance, set by `init`, which the gateway runs on every new instance before its first call.

import { log } from 'orca:identity/log@0.1.0';

const SETTINGS = ['tokens'];
const FORMAT = 'expected comma-separated token=user or token=user:group1|group2 entries';
const CACHE_SECONDS = 30;
// Limit of `identity.id`, from the WIT contract.
const MAX_ID_BYTES = 256;
// RFC 6750 `b64token`: the characters a bearer token may hold.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
// Control characters, which an identity id may not hold.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const utf8 = new TextEncoder();

/** The error value of `init`: a string in the `err` case of `result<_, string>`. */
class SettingError extends Error {
  constructor(message) {
    super(message);
    // componentize-js returns `payload` as the `err` value; a plain Error would trap.
    Object.defineProperty(this, 'payload', { value: message, enumerable: false });
  }
}

function bad(message) {
  return new SettingError(`tokens: ${message}; ${FORMAT}`);
}

/** Parse one `token=user[:group|group]` entry; `n` is its 1-based position. */
function parseEntry(entry, n) {
  // The last `=` separates: a token may end in `=` padding, a user and groups hold none.
  const eq = entry.lastIndexOf('=');
  if (eq < 0) throw bad(`entry ${n} has no "="`);
  const token = entry.slice(0, eq).trim();
  const rest = entry.slice(eq + 1).trim();
  const colon = rest.indexOf(':');
  const user = (colon < 0 ? rest : rest.slice(0, colon)).trim();
  if (user === '') throw bad(`entry ${n} has an empty user`);
  // Never put a token in a message: name the entry by position and user only.
  const which = `entry ${n} (user ${JSON.stringify(user)})`;
  if (token === '') throw bad(`${which} has an empty token`);
  if (!B64TOKEN.test(token)) {
    throw bad(`${which} has a token with characters a bearer token cannot hold`);
  }
  if (utf8.encode(user).length > MAX_ID_BYTES || CONTROL.test(user)) {
    throw bad(`${which}: a user id is at most ${MAX_ID_BYTES} bytes without control characters`);
  }
  const groups = [];
  if (colon >= 0) {
    for (const raw of rest.slice(colon + 1).split('|')) {
      const group = raw.trim();
      if (group === '') throw bad(`${which} has an empty group name`);
      if (!groups.includes(group)) groups.push(group);
    }
  }
  return { token, user, groups };
}

/** The token table, or a thrown SettingError naming the first bad setting or entry. */
function parseSettings(settings) {
  const given = new Map();
  for (const [key, value] of settings) {
    if (!SETTINGS.includes(key)) {
      throw new SettingError(`${key}: unknown setting; accepted settings are ${SETTINGS.join(', ')}`);
    }
    given.set(key, value);
  }
  if (!given.has('tokens')) throw new SettingError(`tokens: required setting is missing; ${FORMAT}`);
  const entries = [];
  let n = 0;
  for (const raw of given.get('tokens').split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    n += 1;
    const parsed = parseEntry(entry, n);
    const earlier = entries.findIndex((e) => e.token === parsed.token);
    if (earlier >= 0) {
      throw bad(`entry ${n} (user ${JSON.stringify(parsed.user)}) repeats the token of entry ${earlier + 1}`);
    }
    entries.push(parsed);
  }
  if (entries.length === 0) throw bad('no entries given');
  return entries;
}

/** Compare two strings in time that depends on their lengths only. */
function sameToken(a, b) {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ (i < y.length ? y[i] : 0);
  return diff === 0;
}

/** The entry holding `token`; every entry is compared, so the time tells nothing of which. */
function lookup(entries, token) {
  let found = null;
  for (const entry of entries) {
    if (sameToken(entry.token, token) && found === null) found = entry;
  }
  return found;
}

/** The verdict for a request and a few words about it for the log. */
function decide(entries, request) {
  const header = request.headers.find(([name]) => name.toLowerCase() === 'authorization');
  if (header === undefined) return [{ tag: 'pass' }, 'pass: no authorization header'];
  const value = header[1].trim();
  const space = value.search(/\s/);
  const scheme = space < 0 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') {
    return [{ tag: 'pass' }, 'pass: authorization is not Bearer'];
  }
  const token = space < 0 ? '' : value.slice(space).trim();
  const entry = lookup(entries, token);
  if (entry === null) {
    const reason = 'unknown bearer token';
    return [{ tag: 'deny', val: { reason, message: undefined } }, `deny: ${reason}`];
  }
  const who = { id: entry.user, displayName: undefined, groups: [...entry.groups], images: undefined };
  return [
    { tag: 'allow', val: { who, cacheSeconds: CACHE_SECONDS, setCookie: undefined } },
    `allow ${JSON.stringify(entry.user)} groups=${JSON.stringify(entry.groups)}`,
  ];
}

let entries = null;

export const lifecycle = {
  init(settings) {
    try {
      entries = parseSettings(settings);
    } catch (error) {
      log('debug', `init failed: ${error.message}`);
      throw error;
    }
    log('debug', `init: ${entries.length} token(s)`);
  },
};

export const http = {
  resolve(request) {
    if (entries === null) {
      log('debug', 'resolve before init: deny');
      return { tag: 'deny', val: { reason: 'resolver used before init', message: undefined } };
    }
    const [verdict, summary] = decide(entries, request);
    log('debug', `resolve ${request.method} ${request.host} from ${request.client.address}: ${summary}`);
    return verdict;
  },
};
