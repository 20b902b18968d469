import { z } from 'zod';
import { strictBody } from '../zod-fields.js';
import { keyPrefix } from './schemas.js';

export const exportQuery = z.object({
  format: z
    .enum(['dotenv', 'json'], { error: 'format must be dotenv or json' })
    .default('json')
    .meta({ description: 'dotenv: KEY=\'value\' lines (text/plain); json: {"KEY": "value"}' }),
  prefix: keyPrefix,
});

export const exportedSecrets = z
  .record(z.string(), z.string())
  .meta({ id: 'ExportedSecrets', description: 'Active, unexpired secrets: key -> value, in key order' });

export const renderBody = strictBody({
  template: z
    .string({ error: 'template is required and must be a string' })
    .max(1024 * 1024, { error: 'template must be at most 1 MiB' })
    .meta({ example: 'postgres://app:{{Secrets.DB_PASSWORD}}@db/app' }),
}).meta({ id: 'RenderTemplateRequest' });

export const renderResponse = z.object({ rendered: z.string() }).meta({ id: 'RenderTemplateResponse' });
