"""Where a run's report files go: names derived from the ids the tables carry, light to import
(the case report links its patient's page without loading the patient report's pandas)."""

from __future__ import annotations

from ..values import distinct_name


def patient_folder(patient_id: str) -> str:
    """A file-name-safe folder name for a patient id (the id the tables already carry), one
    per patient: ids that a safe name would make alike ('P 01', 'P/01', 'P_01') or that differ
    only in case keep a hash of the id (:func:`vascalc.values.distinct_name`; #35 item 10)."""
    return distinct_name(patient_id.strip(), "patient")  # as patient_files groups them
