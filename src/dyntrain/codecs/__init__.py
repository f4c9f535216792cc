"""Content codecs: images, texts, table rows, labels and archives, masks and box files (torch-free: serving shares them)."""
