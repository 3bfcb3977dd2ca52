// The cross-check client of tests/test_pull.py: @huggingface/hub (npm)
// downloading into huggingface_hub's cache layout from the test's fake hub.
//   node cross.mjs ENDPOINT CACHE snapshot ORG/NAME      prints the snapshot folder
//   node cross.mjs ENDPOINT CACHE files ORG/NAME PATH... prints each file's cache path
import { snapshotDownload, downloadFileToCacheDir } from "@huggingface/hub";

const [hubUrl, cacheDir, cmd, repo, ...paths] = process.argv.slice(2);
console.debug = () => {}; // the library logs each download on stdout
const common = { repo: { type: "model", name: repo }, hubUrl, cacheDir };
if (cmd === "snapshot") {
	console.log(await snapshotDownload({ ...common }));
} else if (cmd === "files") {
	for (const path of paths) console.log(await downloadFileToCacheDir({ ...common, path }));
} else {
	console.error(`unknown command ${cmd}`);
	process.exit(2);
}
