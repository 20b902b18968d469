import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

/**
 * components.schemas in name order. fastify-type-provider-zod lists them in the order the
 * schema modules registered them (z.globalRegistry), which moves whenever an import moves;
 * sorted, the committed openapi/openapi.json changes only when a schema does.
 */
function sortSchemas<T>(doc: T): T {
  const components = (doc as { components?: { schemas?: Record<string, unknown> } }).components;
  if (components?.schemas) {
    components.schemas = Object.fromEntries(
      Object.entries(components.schemas).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
  }
  return doc;
}

/**
 * The OpenAPI document, generated from the routes' zod schemas (@fastify/swagger), its
 * reference UI at /docs and the document itself at /openapi.json. `npm run openapi`
 * writes the committed copy (openapi/openapi.json) from the same app. Not encapsulated
 * (fastify-plugin): @fastify/swagger's onRoute hook must see every route of the app.
 */
export const openapiPlugin = fastifyPlugin(async (app: FastifyInstance) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Secrets API',
        version: '1.0.0',
        description:
          'InsForge-compatible secrets management: API keys, tokens and credentials encrypted at rest (AES-256-GCM envelope encryption).',
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'An admin JWT, or an access key (ik_...) as the bearer token',
          },
          apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'An access key (ik_...)' },
        },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: (doc) => sortSchemas(jsonSchemaTransformObject(doc)),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
});
