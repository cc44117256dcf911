-- Stored job properties are read strictly from here on: a field this ebb does not know, or one
-- it expects and the row lacks, is an error instead of a silent default. Rows written before a
-- property existed get its default here, once; later properties come with their own migration.
UPDATE jobs SET properties = json_insert(properties,
    '$.priority', 'normal',
    '$.minimum_retry_delay', 600,
    '$.no_progress_timeout', 1209600,
    '$.maximum_download_time', 7776000,
    '$.notify_flags', 3,
    '$.notify_command_line', json('null'),
    '$.custom_headers', json('[]'),
    '$.proxy', json('{"usage":"preconfig"}'),
    '$.security_flags', 0,
    '$.max_rate', 'unlimited',
    '$.credentials_across_origins', json('false'))
