const fs = require('fs');
const rss = () => (Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status','utf8'))[1])/1024).toFixed(1);
const out = [`bare=${rss()}`];
for (const m of process.argv.slice(2)) { require(m); global.gc(); out.push(`${m}=${rss()}`); }
console.log(out.join(' '));
