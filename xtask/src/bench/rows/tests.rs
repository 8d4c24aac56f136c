//! Unit tests of `rows`.

use super::*;

#[test]
fn every_row_names_ids_of_the_form_group_slash_function() {
    for row in ROWS {
        for id in std::iter::once(row.ours).chain(row.reference) {
            assert_eq!(id.split('/').count(), 2, "{id} in {:?}", row.figure);
        }
    }
}
