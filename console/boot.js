// Starts the console's wasm. A file of its own, not an inline script, so the
// Content-Security-Policy can allow scripts from this origin only (no 'unsafe-inline').
import init from '/pkg/inventory_console.js';
init({ module_or_path: '/pkg/inventory_console.wasm' });
