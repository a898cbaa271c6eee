//! New content for `config set` and `json set`: from `--file`, `--value`,
//! or piped stdin. Read before any backend is opened.

use std::io::{IsTerminal, Read};
use std::path::Path;

use bytes::Bytes;
use kingpin::kingpin_api::Error;

use crate::cli::ContentArgs;

/// The content `args` name.
pub fn read_content(args: &ContentArgs) -> Result<Bytes, Error> {
    match (&args.file, &args.value) {
        (_, Some(value)) => Ok(Bytes::from(value.clone())),
        (Some(path), None) if path != Path::new("-") => std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| Error::invalid(format!("cannot read {}", path.display())).with_source(e)),
        (Some(_), None) => read_stdin(),
        (None, None) => {
            if std::io::stdin().is_terminal() {
                return Err(Error::invalid(
                    "no content given: use --file FILE, --value TEXT, or pipe it to stdin",
                ));
            }
            read_stdin()
        }
    }
}

fn read_stdin() -> Result<Bytes, Error> {
    let mut content = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut content)
        .map_err(|e| Error::invalid("cannot read standard input").with_source(e))?;
    Ok(Bytes::from(content))
}
