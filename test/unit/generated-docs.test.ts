import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ENV_TABLE_PATH, withEnvTable } from '../../scripts/env-table.ts';
import { OPENAPI_PATH, openApiYaml } from '../../scripts/openapi-document.ts';

describe('generated documents', () => {
  it('docs/scalar/openapi.yaml is OpenAPI 3.1 and up to date (run `npm run openapi`)', async () => {
    const fresh = await openApiYaml();
    const committed = fs.readFileSync(OPENAPI_PATH, 'utf8');
    assert.equal(committed, fresh, 'docs/scalar/openapi.yaml is stale: run `npm run openapi`');
    const doc = parse(committed) as { openapi: string; paths: Record<string, Record<string, { description?: string }>> };
    assert.match(doc.openapi, /^3\.1\./);
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) assert.ok(op.description, `${method.toUpperCase()} ${p} has no description`);
    }
  });

  it('the variable table in docs/configuration.md matches the config schema (run `npm run env-table`)', () => {
    const doc = fs.readFileSync(ENV_TABLE_PATH, 'utf8');
    assert.equal(doc, withEnvTable(doc), `${ENV_TABLE_PATH} env table is stale: run \`npm run env-table\``);
  });
});
