mod sync_model;
