const fs = require('fs');
const st = () => { const s = fs.readFileSync('/proc/self/status','utf8'); const g = (k) => (Number(new RegExp(k + ':\\s+(\\d+)').exec(s)[1])/1024).toFixed(1); return `${g('VmRSS')}(a${g('RssAnon')} f${g('RssFile')})`; };
const out = [`bare=${st()}`];
for (const m of process.argv.slice(2)) { require(m); global.gc(); out.push(`${m}=${st()}`); }
console.log(out.join('\n'));
