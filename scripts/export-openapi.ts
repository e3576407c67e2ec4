/** `npm run openapi`: regenerates docs/scalar/openapi.yaml from the zod schemas. */
import fs from 'node:fs';
import { OPENAPI_PATH, openApiYaml } from './openapi-document.ts';

fs.writeFileSync(OPENAPI_PATH, await openApiYaml());
console.log(`wrote ${OPENAPI_PATH}`);
