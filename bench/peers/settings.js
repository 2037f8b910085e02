// Node-RED settings for bench/peers.py: no editor, no admin API, no HTTP listener at all.
// userDir and the flow file are given on the command line (-u <temp folder>, flows.json written there
// by bench/peers.py from the template in this folder), so nothing here depends on the machine.
module.exports = {
    flowFile: "flows.json",
    credentialSecret: false,      // the flow holds no credentials; skip the generated-key warning
    httpAdminRoot: false,         // no editor, no admin API
    httpNodeRoot: false,          // no http-in nodes; with both false Node-RED opens no port
    uiPort: 0,
    logging: {
        console: { level: "info", metrics: false, audit: false },  // info: "Connected to broker" lines
    },
    externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
    editorTheme: { projects: { enabled: false } },
    functionExternalModules: false,
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
};
