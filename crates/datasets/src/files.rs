//! Opening data files safely: regular files only, checked before anything is read.
//!
//! The check itself is `persist`'s (the one place that decides what may be opened for reading);
//! this module turns its errors into [`DatasetError`]s with a hint on where to get the data.

use std::fs::File;
use std::path::Path;

use persist::PersistError;

use crate::error::{DatasetError, Result};

pub(crate) use persist::file_type_name;

/// Opens `path` for reading if it is a regular file (a directory, FIFO or device is refused
/// before it is opened, so nothing blocks or reads without end); returns the file and its size.
/// A missing file (or an empty path) is [`DatasetError::NotFound`] with `hint`.
pub(crate) fn open_regular(path: &Path, hint: &'static str) -> Result<(File, u64)> {
    persist::open_regular(path).map_err(|e| match e {
        PersistError::EmptyPath => DatasetError::NotFound { path: path.to_path_buf(), hint },
        PersistError::Io { kind: std::io::ErrorKind::NotFound, .. } => {
            DatasetError::NotFound { path: path.to_path_buf(), hint }
        }
        PersistError::Io { op, kind, .. } => {
            DatasetError::Io { path: path.to_path_buf(), source: std::io::Error::new(kind, format!("{op} failed")) }
        }
        PersistError::NotAFile { what, .. } => DatasetError::NotAFile { path: path.to_path_buf(), what },
        // `open_regular` returns no other error; keep its message if that ever changes.
        other => DatasetError::Io { path: path.to_path_buf(), source: std::io::Error::other(other.to_string()) },
    })
}
