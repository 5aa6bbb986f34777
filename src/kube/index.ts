export { StaticNamespaces, readNamespacesFile } from './namespaces-file.js';
