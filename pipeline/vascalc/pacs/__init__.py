"""The DICOM node: vascalc listen and vascalc send (docs, 'Results into a PACS')."""
