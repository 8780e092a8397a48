//! Opening data files safely: regular files only, checked before anything is read.

use std::fs::File;
use std::path::Path;

use crate::error::{DatasetError, Result};

/// What a path that is not a regular file is.
pub(crate) fn file_type_name(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "FIFO";
        }
        if ft.is_char_device() {
            return "character device";
        }
        if ft.is_block_device() {
            return "block device";
        }
        if ft.is_socket() {
            return "socket";
        }
    }
    if ft.is_dir() { "directory" } else { "special file" }
}

/// Opens `path` for reading if it is a regular file (a directory, FIFO or device is refused
/// before it is opened, so nothing blocks or reads without end); returns the file and its size.
/// A missing file is [`DatasetError::NotFound`] with `hint`.
pub(crate) fn open_regular(path: &Path, hint: &'static str) -> Result<(File, u64)> {
    let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DatasetError::NotFound { path: path.to_path_buf(), hint });
        }
        Err(e) => return Err(io(e)),
    };
    if !meta.is_file() {
        return Err(DatasetError::NotAFile { path: path.to_path_buf(), what: file_type_name(meta.file_type()) });
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(0o4000); // O_NONBLOCK: the path may have been swapped for a FIFO since
    }
    let file = options.open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(DatasetError::NotAFile { path: path.to_path_buf(), what: file_type_name(meta.file_type()) });
    }
    Ok((file, meta.len()))
}
