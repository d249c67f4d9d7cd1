//! `output.stdout = true`: each document on its own line of stdout, as Logstash's `stdout { codec =>
//! json_lines }` prints it. For debugging; it settles nothing by itself.

use std::io::Write;

use crate::batch::Batch;

pub(super) fn print(batch: &Batch) {
    let mut out = std::io::stdout().lock();
    for i in 0..batch.items().len() {
        let written = out.write_all(batch.document(i)).and_then(|_| out.write_all(b"\n"));
        if written.is_err() {
            return; // a closed stdout must not stop indexing
        }
    }
    let _ = out.flush();
}
