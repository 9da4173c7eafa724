// Tests are TypeScript compiled by tsc to dist/test (scripts/test.js runs tsc first)
// and run as native ES modules (node --experimental-vm-modules): no transform.
/** @type {import('jest').Config} */
export default {
  rootDir: '.',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['<rootDir>/dist/test/**/*.test.js'],
  testEnvironment: 'node',
  transform: {},
  moduleFileExtensions: ['js', 'mjs', 'cjs', 'json', 'node'],
  // Real Redis/Postgres/S3 and native builds: generous, but a hung test still ends.
  testTimeout: 120_000,
  maxWorkers: 2,
  // A handle leaked by one test must not hang CI past its limit; find leaks with --detectOpenHandles.
  forceExit: true,
  verbose: false,
};
