select user_id, phone_number, email
from {{ ref('two_factor') }}
